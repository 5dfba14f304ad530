"""Running code in a real VM and collecting what comes back."""

from dataclasses import dataclass, field

from sandbox_kernel import protocol as p
from sandbox_kernel.vm import SandboxVM


@dataclass
class Outcome:
    stdout: str = ""
    stderr: str = ""
    events: list[p.Event] = field(default_factory=list)
    chunks: int = 0

    @property
    def complete(self) -> p.ExecuteReply:
        last = self.events[-1]
        assert isinstance(last, p.ExecuteReply), last
        return last


async def run(vm: SandboxVM, code: str, **options: object) -> Outcome:
    out = Outcome()
    async for event in vm.execute(code, **options):
        out.events.append(event)
        if isinstance(event, p.OutputChunk):
            out.chunks += 1
            if event.name == "stdout":
                out.stdout += event.text
            else:
                out.stderr += event.text
    return out
