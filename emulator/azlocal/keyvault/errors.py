"""Key Vault's error envelope: {"error": {"code", "message", "innererror": {"code"}}}.

It has ARM's shape, so KeyVaultError is an ArmError and the shared middleware renders it
(and injected faults on vault paths come out in the same envelope).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from azlocal.errors import ArmError

HELP = "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"


class KeyVaultError(ArmError):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        inner: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message, headers)
        self.inner = inner

    def response(self) -> web.Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return web.json_response({"error": error}, status=self.status, headers=self.headers)


def certificate_not_found(name: str) -> KeyVaultError:
    # Wording from Key Vault answers quoted in public issues (e.g. Azure/azure-sdk-for-js#20930).
    return KeyVaultError(
        404,
        "CertificateNotFound",
        f"A certificate with (name/id) {name} was not found in this key vault. If you recently "
        f"deleted this certificate you may be able to recover it using the correct recovery "
        f"command. {HELP}",
    )


def secret_not_found(name: str) -> KeyVaultError:
    # By analogy with CertificateNotFound (unverified wording).
    return KeyVaultError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently "
        f"deleted this secret you may be able to recover it using the correct recovery "
        f"command. {HELP}",
    )


def pending_not_found(name: str) -> KeyVaultError:
    # Unverified code and wording.
    return KeyVaultError(
        404, "PendingCertificateNotFound", f"Pending certificate not found: {name}"
    )


def bad_parameter(message: str) -> KeyVaultError:
    return KeyVaultError(400, "BadParameter", message)
