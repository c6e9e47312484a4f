"""The load generator: one process, one asyncio loop (uvloop if installed).

The harness starts it as ``python -m bench.loadgen`` and talks to it over
its standard streams, one JSON object or word per line:

    harness -> loadgen   {spec}          the scenario and its parameters
    loadgen -> harness   {"event": "ready", ...}   prepared (logged in, ...)
    harness -> loadgen   go
    loadgen -> harness   {"event": "hold", ...}    (W3 only) holding connections
    harness -> loadgen   release
    loadgen -> harness   {"event": "result", ...}  the measured figures
    harness -> loadgen   release          (after its last sample: now disconnect)
    loadgen -> harness   {"event": "error", "error": "..."}  on failure

Each result carries the loadgen's own CPU time over the measured phase, so
the report can show it next to the server's.  The process ends by itself
when its standard input closes or its deadline passes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import traceback
from typing import Any

from bench.procstat import raise_nofile, run_queue_wait, self_cpu
from bench.scenarios import SCENARIOS


class Control:
    """The line channel to the harness."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue()
        threading.Thread(target=self._read_stdin, daemon=True).start()

    def _read_stdin(self) -> None:
        for line in sys.stdin:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, line.strip())
        self._loop.call_soon_threadsafe(self._queue.put_nowait, "eof")

    @staticmethod
    def emit(event: str, **data: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
        sys.stdout.flush()

    async def expect(self, word: str, timeout: float) -> None:
        line = await asyncio.wait_for(self._queue.get(), timeout)
        if line != word:
            raise RuntimeError(f"expected {word!r} from the harness, got {line!r}")

    async def hold(self, info: dict[str, Any], timeout: float = 300.0) -> None:
        self.emit("hold", **info)
        await self.expect("release", timeout)


async def main_async(spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    control = Control(loop)
    scenario = SCENARIOS[spec["mode"]](spec, control)
    info = await scenario.prepare()
    control.emit("ready", **info)
    await control.expect("go", float(spec.get("go_timeout", 300)))
    cpu0, t0, wait0 = self_cpu(), time.monotonic(), run_queue_wait("self")
    result = await scenario.run()
    result["loadgen_cpu_s"] = self_cpu() - cpu0
    result["loadgen_wait_s"] = run_queue_wait("self") - wait0
    result["loadgen_wall_s"] = time.monotonic() - t0
    control.emit("result", **result)
    # Connections stay open until the harness has sampled the server.
    await control.expect("release", float(spec.get("go_timeout", 300)))
    await scenario.finish()


def main() -> int:
    spec = json.loads(sys.stdin.readline())
    raise_nofile(int(spec.get("nofile", 4096)))
    loop_name = "asyncio"
    if spec.get("uvloop", True):
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
            loop_name = "uvloop"
        except ImportError:
            pass
    Control.emit("started", loop=loop_name, pid=os.getpid())
    deadline = float(spec.get("deadline", 1800))
    # The last resort: whatever happens, the process does not outlive this.
    threading.Timer(deadline, lambda: os._exit(3)).start()
    try:
        asyncio.run(main_async(spec))
    except BaseException as e:  # report everything to the harness
        Control.emit("error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
        sys.stdout.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)  # without waiting for the stdin reader or the timer


if __name__ == "__main__":
    sys.exit(main())
