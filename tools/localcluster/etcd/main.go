// Command etcd wraps etcd's server entry point so it builds from the Go
// module proxy (go install of go.etcd.io/etcd/server/v3 fails because its
// go.mod carries replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
