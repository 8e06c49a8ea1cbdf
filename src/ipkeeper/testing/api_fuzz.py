"""A bounded schemathesis run against a lab daemon's TCP API: every operation, the admin
token, destructive operations against scratch resources; no 5xx, no schema violation.

schemathesis runs inside the client's namespace (it must reach the daemon's
HTTPS listener) and loads this module as its hooks (SCHEMATHESIS_HOOKS), so
that, before each request, whatever could leave the lab or touch the host is
made harmless without changing whether the request is valid:
- every IP address in a body becomes a lab scratch VIP (198.18.0.80-89,
  2001:db8::80-89), never a server's own address or one outside the lab;
  a host name becomes one that cannot resolve (`.invalid`);
- an application command that names an existing program becomes
  `/bin/true`, so no generated command line runs as root;
- half of the valid tags in paths become one of the scratch resources, so
  in-service, out-of-service, settings, ping lists, unextend and delete run
  on real resources rather than only answering 404.
The event stream (an endless answer) is the one operation left out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from subprocess import CompletedProcess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipkeeper.testing.labtools import LabServer

SCRATCH = ("scratch", "scratch-app")
SCRATCH_VIP = "198.18.0.90"
LEFT_OUT = ("/api/v1/events/stream",)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
COMMANDS = ("restore", "remove", "check", "recover")


def _pick(text: str, n: int) -> int:
    return hashlib.sha256(text.encode()).digest()[0] % n


def safe_address(value: Any) -> Any:
    """A lab scratch VIP for an IP address, an unresolvable name for a host name."""
    if not isinstance(value, str) or not value.strip():
        return value
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        if value.replace(".", "").replace("-", "").isalnum():
            return "scratch.invalid"
        return value
    last = 80 + _pick(value, 10)
    return f"198.18.0.{last}" if address.version == 4 else f"2001:db8::{last}"


def safe_command(value: Any) -> Any:
    """`/bin/true` instead of any command line whose program exists on this host."""
    if not isinstance(value, str):
        return value
    try:
        words = shlex.split(value)
    except ValueError:
        return value
    if words and os.path.exists(words[0]):
        return "/bin/true"
    return value


def safe_body(body: Any) -> Any:
    """The body with addresses and commands made harmless (see the module's docstring)."""
    if not isinstance(body, dict):
        return body
    result = dict(body)
    if "address" in result:
        result["address"] = safe_address(result["address"])
    if isinstance(result.get("addresses"), list):
        result["addresses"] = [safe_address(a) for a in result["addresses"]]
    for key in COMMANDS:
        if key in result:
            result[key] = safe_command(result[key])
    return result


def scratch_tags(path_parameters: dict[str, Any]) -> dict[str, Any]:
    """Half of the valid tags replaced by a scratch resource's."""
    result = dict(path_parameters)
    for key in ("tag", "parent", "child"):
        value = result.get(key)
        if isinstance(value, str) and 1 <= len(value) <= 63 and _pick(value, 2) == 0:
            result[key] = SCRATCH[_pick(value + key, len(SCRATCH))]
    return result


def _register() -> None:
    try:
        import schemathesis
    except ImportError:  # imported by tests that only build the command line
        return

    @schemathesis.hook
    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        """Make the request harmless (module docstring) just before it is sent."""
        if isinstance(getattr(case, "body", None), dict):
            case.body = safe_body(case.body)
        if case.path_parameters:
            case.path_parameters = scratch_tags(case.path_parameters)


_register()


def command(
    url: str, token: str, cafile: Path, examples: int, seed: int, phases: Sequence[str]
) -> list[str]:
    """The schemathesis command line for a daemon at `url` (the OpenAPI document's base)."""
    excluded = [arg for path in LEFT_OUT for arg in ("--exclude-path", path)]
    return [
        "schemathesis", "run", f"{url}/api/v1/openapi.json",
        "--url", url,
        "--header", f"Authorization: Bearer {token}",
        "--tls-verify", str(cafile),
        "--checks", ",".join(CHECKS),
        "--phases", ",".join(phases),
        "--max-examples", str(examples),
        "--seed", str(seed),
        "--workers", "1",
        "--request-timeout", "60",
        "--no-shrink",
        "--suppress-health-check", "all",
        "--warnings", "off",
        *excluded,
    ]  # fmt: skip


def run(
    url: str,
    token: str,
    cafile: Path,
    examples: int = 5,
    seed: int = 15,
    phases: Sequence[str] = ("examples", "coverage", "fuzzing"),
    timeout: float = 1800.0,
) -> CompletedProcess[str]:
    """Run schemathesis from the lab's client against `url`; its process, output kept."""
    from ipkeeper.testing import run_cli

    argv = command(url, token, cafile, examples, seed, phases)
    env = {"SCHEMATHESIS_HOOKS": __name__, "NO_COLOR": "1"}
    return run_cli("lab", "exec", "client", "--", *argv, timeout=timeout, env=env)


def create_scratch(server: LabServer, target: str = "s2") -> None:
    """The resources destructive operations act on: an IP and an application (whose
    commands do nothing), both extended to `target`."""
    server.json(
        "create", "ip", "--address", SCRATCH_VIP, "--netmask", "24", "--tag", SCRATCH[0]
    )  # fmt: skip
    server.json(
        "create", "app", "--tag", SCRATCH[1], "--restore", "/bin/true",
        "--remove", "/bin/true", "--check", "/bin/true", "--timeout", "5",
    )  # fmt: skip
    for tag in SCRATCH:
        server.json("extend", tag, "--target", target)


def main() -> None:
    """`python -m ipkeeper.testing.api_fuzz --examples N`: a lab, scratch resources, the
    run with N examples per operation and phase, the lab removed; exits as schemathesis."""
    import argparse
    import sys
    import time

    from ipkeeper.lab import control, daemons
    from ipkeeper.testing.labtools import LabServer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    control.down()
    lab = control.up(2)
    try:
        s1 = LabServer(lab.node("s1"))
        s1.tune(API_AUTH_FAILURES=1000000)  # the run's 401 cases are no attack
        create_scratch(s1)
        started = time.monotonic()
        proc = run(
            daemons.api_url(lab.node("s1")),
            daemons.token_path().read_text().strip(),
            daemons.cert_path(),
            examples=args.examples,
            seed=args.seed,
            timeout=6 * 3600,
        )
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
        print(
            f"{args.examples} examples per operation, seed {args.seed}: "
            f"{time.monotonic() - started:.0f} s, exit {proc.returncode}"
        )
    finally:
        control.down()
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
