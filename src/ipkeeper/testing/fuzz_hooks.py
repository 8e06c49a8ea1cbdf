"""schemathesis hooks (SCHEMATHESIS_HOOKS=ipkeeper.testing.fuzz_hooks) that keep a
fuzzing run inside the lab's rules: addresses only from 198.18.0.0/15 and
2001:db8::/32, and no program run but /bin/true.

Generated data is otherwise left alone: text that is not an address stays as
it is, to be refused. But an address outside the lab (or a host name, which
the daemon would resolve) becomes a lab VIP, and any application command
becomes /bin/true, so that a well-formed request can succeed without touching
anything outside the lab's namespaces.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import schemathesis

LAB = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("2001:db8::/32"))
VIP4, VIP6 = "198.18.0.77", "2001:db8::77"
HARMLESS = "/bin/true"
COMMANDS = ("restore", "remove", "check", "recover")
HOSTNAME = re.compile(r"[A-Za-z0-9.-]+")


def lab_address(value: Any) -> Any:
    """`value` when it is no address (to be refused) or a lab one; otherwise a lab VIP."""
    if not isinstance(value, str):
        return value
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        if HOSTNAME.fullmatch(value.strip()) and not value.strip().replace(".", "").isdigit():
            return VIP4  # a name the daemon would look up
        return value
    if any(address in network for network in LAB):
        return value
    return VIP6 if address.version == 6 else VIP4


def lab_body(body: Any) -> Any:
    """A request body with its addresses and commands made safe for the lab."""
    if not isinstance(body, dict):
        return body
    safe = dict(body)
    if "address" in safe:
        safe["address"] = lab_address(safe["address"])
    if isinstance(safe.get("addresses"), list):
        safe["addresses"] = [lab_address(a) for a in safe["addresses"]]
    for name in COMMANDS:
        if isinstance(safe.get(name), str) and safe[name]:
            safe[name] = HARMLESS
    return safe


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Make each request safe for the lab just before it is sent."""
    case.body = lab_body(case.body)
    if isinstance(case.query, dict) and "address" in case.query:
        case.query["address"] = lab_address(case.query["address"])
