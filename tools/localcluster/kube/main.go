// Command kube is a multicall binary holding kube-apiserver and
// kube-controller-manager, so the shared Kubernetes code is compiled and
// linked once. Usage: kube apiserver [flags] | kube controller-manager [flags].
package main

import (
	"fmt"
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kube apiserver|controller-manager [flags]")
		os.Exit(2)
	}
	sub := os.Args[1]
	os.Args = append([]string{os.Args[0] + " " + sub}, os.Args[2:]...)
	switch sub {
	case "apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "controller-manager":
		os.Exit(cli.Run(kcm.NewControllerManagerCommand()))
	default:
		fmt.Fprintf(os.Stderr, "unknown component %q: want apiserver or controller-manager\n", sub)
		os.Exit(2)
	}
}
