"""How many sandbox kernels can run at once, each answering a cell."""

import asyncio
import contextlib
import os
import time

from jupyter_client.manager import AsyncKernelManager

from bench.kernels import SANDBOX, TIMEOUT


async def _one(km: AsyncKernelManager) -> bool:
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=TIMEOUT)
        msg_id = kc.execute("import os; os.getpid()")
        while True:
            reply = await kc.get_shell_msg(timeout=TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                return bool(reply["content"]["status"] == "ok")
    except Exception:
        return False
    finally:
        kc.stop_channels()


async def max_concurrent(limit: int) -> tuple[int, float]:
    """Starts ``limit`` kernels at once; returns how many answered, and how long it took."""
    managers = [AsyncKernelManager(kernel_name=SANDBOX) for _ in range(limit)]
    started = time.perf_counter()
    try:
        await asyncio.gather(*(km.start_kernel(env=dict(os.environ)) for km in managers))
        answered = await asyncio.gather(*(_one(km) for km in managers))
        return sum(answered), time.perf_counter() - started
    finally:
        for km in managers:
            with contextlib.suppress(Exception):
                await km.shutdown_kernel(now=False)
