"""A bounded schemathesis run against a lab daemon's TCP API (R27): every operation, over
the lab's TLS, with the admin token, destructive operations against scratch resources; no
5xx, no answer outside the OpenAPI document (status codes, headers, the reply models of
api/replies.py), what the schema forbids refused, and 405 with `Allow` for a method a path
does not take.

schemathesis runs inside the client's namespace (it must reach the daemon's
HTTPS listener) and loads this module as its hooks (SCHEMATHESIS_HOOKS), so
that, before each request, whatever could leave the lab or touch the host is
made harmless without changing whether the request is valid:
- every IP address in a body or in the `address` query becomes a lab scratch
  VIP (198.18.0.80-89, 2001:db8::80-89), never a server's own address or one
  outside the lab; a host name becomes one that cannot resolve (`.invalid`);
- an application command that names an existing program becomes
  `/bin/true`, so no generated command line runs as root;
- half of the valid tags in paths become one of the scratch resources, so
  in-service, out-of-service, settings, ping lists, unextend and delete run
  on real resources rather than only answering 404.
The event stream (an endless answer) is the one operation left out; the lab
test checks it by hand.

tests/lab/test_api_schema.py runs it with a few examples in `make test`; `make fuzz`
(`python -m ipkeeper.testing.api_fuzz --examples N`, under the lab lock) with many.
IPKEEPER_FUZZ_TOKEN runs it with another token (say, a viewer's: then the admin
operations must answer 403, as documented), IPKEEPER_FUZZ_SEED with another seed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from subprocess import CompletedProcess
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipkeeper.testing.labtools import LabServer

SCRATCH = ("scratch", "scratch-app")
SCRATCH_VIP = "198.18.0.90"
# The resource the OpenAPI document's examples name, so the examples phase meets it.
EXAMPLE_VIP = "198.18.0.50"
LEFT_OUT = ("/api/v1/events/stream",)
# Every check but positive_data_acceptance, which takes any request the schema allows
# as one that must succeed: a well-formed create of an address in use rightly fails.
SKIPPED_CHECKS = ("positive_data_acceptance",)
PHASES = ("examples", "coverage", "fuzzing")
DEFAULT_SEED = 15
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


def safe_query(query: Any) -> Any:
    """The query with its `address` (GET /interfaces) made a lab one, like a body's."""
    if not isinstance(query, dict) or "address" not in query:
        return query
    return {**query, "address": safe_address(query["address"])}


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
        if getattr(case, "query", None):
            case.query = safe_query(case.query)
        if case.path_parameters:
            case.path_parameters = scratch_tags(case.path_parameters)


_register()


def seed() -> int:
    """The run's seed: IPKEEPER_FUZZ_SEED, else a fixed one (a run is repeatable)."""
    return int(os.environ.get("IPKEEPER_FUZZ_SEED") or DEFAULT_SEED)


def token(default: Path) -> str:
    """The token the run shows: IPKEEPER_FUZZ_TOKEN, else the first line of `default`."""
    return os.environ.get("IPKEEPER_FUZZ_TOKEN") or default.read_text().split()[0]


def command(
    url: str,
    token: str,
    cafile: Path,
    examples: int,
    seed: int,
    phases: Sequence[str] = PHASES,
) -> list[str]:
    """The schemathesis command line for a daemon at `url` (the OpenAPI document's base)."""
    excluded = [arg for path in LEFT_OUT for arg in ("--exclude-path", path)]
    return [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/api/v1/openapi.json",
        "--url", url,
        "--header", f"Authorization: Bearer {token}",
        "--tls-verify", str(cafile),
        "--checks", "all",
        "--exclude-checks", ",".join(SKIPPED_CHECKS),
        "--phases", ",".join(phases),
        "--max-examples", str(examples),
        "--seed", str(seed),
        "--workers", "1",
        "--request-timeout", "60",
        "--generation-database", "none",
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
    seed: int = DEFAULT_SEED,
    phases: Sequence[str] = PHASES,
    timeout: float = 1800.0,
) -> CompletedProcess[str]:
    """Run schemathesis from the lab's client against `url`; its process, output kept."""
    from ipkeeper.testing import run_cli

    argv = command(url, token, cafile, examples, seed, phases)
    env = {"SCHEMATHESIS_HOOKS": __name__, "NO_COLOR": "1"}
    return run_cli("lab", "exec", "client", "--", *argv, timeout=timeout, env=env)


def create_scratch(server: LabServer, target: str = "s2") -> None:
    """The resources operations act on, all extended to `target`: two scratch ones (an IP
    and an application whose commands do nothing, with no IP resource below it: the
    server needs UNGUARDED_APPS=allow) and the one the examples name."""
    server.json(
        "create", "ip", "--address", SCRATCH_VIP, "--netmask", "24", "--tag", SCRATCH[0]
    )  # fmt: skip
    server.json(
        "create", "app", "--tag", SCRATCH[1], "--restore", "/bin/true",
        "--remove", "/bin/true", "--check", "/bin/true", "--timeout", "5",
    )  # fmt: skip
    server.json("create", "ip", "--address", EXAMPLE_VIP, "--netmask", "24")
    for tag in (*SCRATCH, f"ip-{EXAMPLE_VIP}"):
        server.json("extend", tag, "--target", target)


def main() -> None:
    """`python -m ipkeeper.testing.api_fuzz --examples N`: a lab, scratch resources, the
    run with N examples per operation and phase, the lab removed; exits as schemathesis."""
    import argparse
    import time

    from ipkeeper.lab import control, daemons
    from ipkeeper.testing.labtools import LabServer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="default: IPKEEPER_FUZZ_SEED or 15")
    args = parser.parse_args()
    chosen = args.seed if args.seed is not None else seed()
    control.down()
    lab = control.up(2)
    try:
        s1 = LabServer(lab.node("s1"))
        # The run's 401 cases are no attack; the scratch application has no IP resource.
        s1.tune(API_AUTH_FAILURES=1000000, UNGUARDED_APPS="allow")
        create_scratch(s1)
        started = time.monotonic()
        proc = run(
            daemons.api_url(lab.node("s1")),
            token(daemons.token_path()),
            daemons.cert_path(),
            examples=args.examples,
            seed=chosen,
            timeout=6 * 3600,
        )
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
        print(
            f"{args.examples} examples per operation, seed {chosen}: "
            f"{time.monotonic() - started:.0f} s, exit {proc.returncode}"
        )
    finally:
        control.down()
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
