"""The application kit: the administrator's own restore/remove/check/recover commands."""

from __future__ import annotations

from typing import Any

from ipkeeper.kits.app import scripts
from ipkeeper.kits.base import KitDescription, Parameter
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult, Outcome

ACTIONS = ("restore", "remove", "check", "recover")
DEFAULT_TIMEOUT = 60.0


def validate_app(props: dict[str, Any]) -> dict[str, Any]:
    """Check an app resource's commands and timeout; raises ValueError('field: reason')."""
    clean: dict[str, Any] = {}
    for action in ACTIONS:
        command = props.get(action)
        if command in (None, ""):
            if action == "recover":
                continue
            raise ValueError(f"{action}: is required")
        if "\0" in str(command):
            raise ValueError(f"{action}: contains a NUL character")
        try:
            scripts.check_command(str(command))
        except (scripts.CommandError, OSError, ValueError) as exc:
            raise ValueError(f"{action}: {exc}") from None
        clean[action] = str(command)
    timeout = props.get("timeout", DEFAULT_TIMEOUT)
    try:
        clean["timeout"] = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"timeout: {timeout!r} is not a number of seconds") from None
    if not 1 <= clean["timeout"] <= 3600:
        raise ValueError("timeout: must be between 1 and 3600 seconds")
    return clean


class AppKit:
    """Runs the commands an administrator gave for an application resource."""

    kind = "app"

    def __init__(self, server: str) -> None:
        self.server = server

    def describe(self) -> KitDescription:
        """Parameters of `create app`."""
        return KitDescription(
            kind=self.kind,
            summary="An application started, stopped and checked by your own commands",
            parameters=(
                Parameter("tag", "unique name", required=True),
                Parameter("restore", "command that starts it", required=True),
                Parameter("remove", "command that stops it", required=True),
                Parameter("check", "command that exits 0 when it is healthy", required=True),
                Parameter("recover", "command that repairs it in place; default: restore again"),
                Parameter("timeout", "seconds each command may take", default=str(DEFAULT_TIMEOUT)),
            ),
        )

    def _run(self, instance: Instance, action: str, command: str) -> scripts.Outcome:
        env = {
            "IPKEEPER_TAG": instance.tag,
            "IPKEEPER_ACTION": action,
            "IPKEEPER_SERVER": self.server,
        }
        return scripts.run(command, env, float(instance.props.get("timeout", DEFAULT_TIMEOUT)))

    def _result(self, action: str, outcome: scripts.Outcome, failed: Outcome) -> KitResult:
        details = {"output": outcome.output, "exit": outcome.returncode}
        timings = {action: outcome.seconds}
        if outcome.ok:
            return KitResult.success(
                f"{action} command succeeded", timings=timings, details=details
            )
        why = "timed out" if outcome.returncode is None else f"exited {outcome.returncode}"
        tail = outcome.output.splitlines()[-1] if outcome.output else ""
        reason = f"{action} command {why}" + (f": {tail}" if tail else "")
        return KitResult(failed, reason, step=action, timings=timings, details=details)

    def restore(self, instance: Instance) -> KitResult:
        """Run the restore command, then the check once."""
        started = self._result(
            "restore",
            self._run(instance, "restore", instance.props["restore"]),
            Outcome.FAILED_NODE,
        )
        if not started.ok:
            return started
        checked = self.quick_check(instance)
        if not checked.ok:
            self._run(instance, "remove", instance.props["remove"])
            return KitResult(
                Outcome.FAILED_NODE,
                f"check after restore failed: {checked.reason}",
                step="check",
                details=checked.details,
            )
        return started

    def remove(self, instance: Instance) -> KitResult:
        """Run the remove command."""
        return self._result(
            "remove", self._run(instance, "remove", instance.props["remove"]), Outcome.FAILED_NODE
        )

    def quick_check(self, instance: Instance) -> KitResult:
        """Run the check command."""
        return self._result(
            "check", self._run(instance, "check", instance.props["check"]), Outcome.FAILED_LOCAL
        )

    def time_limit(self, instance: Instance, action: str) -> float:
        """Each command may take `timeout`: restore runs up to three (start, check, stop)."""
        each = float(instance.props.get("timeout", DEFAULT_TIMEOUT))
        commands = {"restore": 3, "recover": 2, "remove": 1, "quick_check": 1, "probe": 1}[action]
        return commands * each + 5.0

    def probe(self, instance: Instance) -> bool:
        """True when the check command passes."""
        return self.quick_check(instance).ok

    def recover(self, instance: Instance) -> KitResult:
        """Run the recover command (or restore again), then check."""
        command = instance.props.get("recover") or instance.props["restore"]
        repaired = self._result(
            "recover", self._run(instance, "recover", command), Outcome.FAILED_NODE
        )
        if not repaired.ok:
            return repaired
        checked = self.quick_check(instance)
        if not checked.ok:
            return KitResult(
                Outcome.FAILED_NODE, f"still failing after recovery: {checked.reason}", step="check"
            )
        return KitResult.success("recovered: recover command succeeded and the check passes")
