"""The TileLab kernel under real Jupyter clients: restart, interrupt, a bad signature, a stalled IOPub
subscriber, nbconvert --execute and jupyter console.

The code samples use only commands LANGUAGE.md defines (print, get, load, bench). TILELAB_LONG_CODE overrides
the long cell an interrupt stops.

Run: JUPYTER_PATH=<folder holding kernels/tilelab> /usr/bin/python3 -m unittest -v test_clients
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import zmq
from jupyter_client.manager import start_new_kernel
from jupyter_client.session import Session

KERNEL = os.environ.get("TILELAB_KERNEL_NAME", "tilelab")
LONG_CODE = os.environ.get("TILELAB_LONG_CODE", "load synth:tiny-moe as=m\nbench m pp=512 tg=512 reps=1000")
JUPYTER = os.environ.get("JUPYTER", "/usr/bin/jupyter")


def run_cell(kc, code, timeout=30):
    """Execute code; return (reply content, IOPub messages between busy and idle)."""
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    outputs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status":
            if msg["content"]["execution_state"] == "idle":
                break
            continue
        outputs.append(msg)
    return reply["content"], outputs


class KernelLifecycle(unittest.TestCase):
    def setUp(self):
        self.km, self.kc = start_new_kernel(kernel_name=KERNEL)

    def tearDown(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def test_restart_gives_a_working_kernel(self):
        reply, _ = run_cell(self.kc, 'print "before"')
        self.assertEqual(reply["status"], "ok")
        old_pid = self.km.provisioner.process.pid
        self.km.restart_kernel()
        self.assertNotEqual(self.km.provisioner.process.pid, old_pid)
        self.kc.wait_for_ready(timeout=30)
        reply, outputs = run_cell(self.kc, 'print "after"')
        self.assertEqual(reply["status"], "ok")
        self.assertEqual(reply["execution_count"], 1, "a restarted kernel counts from 1 again")
        self.assertIn("after", "".join(m["content"].get("text", "") for m in outputs))

    def test_interrupt_ends_a_long_cell_in_an_error_and_the_next_cell_works(self):
        msg_id = self.kc.execute(LONG_CODE)
        time.sleep(0.5)
        t0 = time.monotonic()
        self.km.interrupt_kernel()
        reply = self.kc.get_shell_msg(timeout=10)
        self.assertEqual(reply["parent_header"]["msg_id"], msg_id)
        self.assertEqual(reply["content"]["status"], "error")
        self.assertLess(time.monotonic() - t0, 5)
        reply, outputs = run_cell(self.kc, "get threads")
        self.assertEqual(reply["status"], "ok")
        self.assertTrue(any(m["msg_type"] == "execute_result" for m in outputs))

    def test_a_message_with_a_bad_signature_is_ignored(self):
        info = self.km.get_connection_info(session=True)
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(f"tcp://{info['ip']}:{info['shell_port']}")
        try:
            forger = Session(key=b"not-the-key", signature_scheme="hmac-sha256")
            forger.send(sock, "execute_request", content={"code": 'print "forged"', "silent": False})
            self.assertEqual(sock.poll(1000), 0, "the kernel answered a forged message")
        finally:
            sock.close()
        reply, outputs = run_cell(self.kc, 'print "genuine"')
        self.assertEqual(reply["status"], "ok")
        texts = "".join(m["content"].get("text", "") for m in outputs)
        self.assertNotIn("forged", texts)
        self.assertEqual(reply["execution_count"], 1, "the forged cell must not have run")

    def test_the_heartbeat_beats(self):
        deadline = time.monotonic() + 10
        while not self.kc.hb_channel.is_beating():
            self.assertLess(time.monotonic(), deadline, "no heartbeat within 10 s")
            time.sleep(0.1)

    def test_comm_info_replies_and_an_unknown_comm_is_closed(self):
        msg_id = self.kc.comm_info()
        reply = self.kc.get_shell_msg(timeout=10)
        self.assertEqual(reply["parent_header"]["msg_id"], msg_id)
        self.assertEqual(reply["content"], {"status": "ok", "comms": {}})
        # What Notebook 6's widgets extension does at page load.
        msg = self.kc.session.msg("comm_open", {"comm_id": "c1", "target_name": "jupyter.widget.version", "data": {}})
        self.kc.shell_channel.send(msg)
        while True:
            m = self.kc.get_iopub_msg(timeout=10)
            if m["parent_header"].get("msg_id") == msg["header"]["msg_id"] and m["msg_type"] == "comm_close":
                self.assertEqual(m["content"]["comm_id"], "c1")
                break

    def test_a_stalled_subscriber_does_not_stop_output_to_others(self):
        info = self.km.get_connection_info()
        ctx = zmq.Context.instance()
        stalled = ctx.socket(zmq.SUB)
        stalled.setsockopt(zmq.RCVHWM, 1)
        stalled.setsockopt(zmq.RCVBUF, 4096)
        stalled.linger = 0
        stalled.subscribe(b"")
        stalled.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        try:
            time.sleep(0.3)  # let the subscription arrive
            # 3000 outputs of 4 kB: 12 MB, more than the stalled peer's socket buffers can absorb.
            n = 3000
            code = "\n".join(f'print "line {i} {"x" * 4000}"' for i in range(n))
            reply, outputs = run_cell(self.kc, code, timeout=60)
            self.assertEqual(reply["status"], "ok")
            lines = "".join(m["content"]["text"] for m in outputs if m["msg_type"] == "stream").splitlines()
            self.assertEqual(len(lines), n, f"got {len(lines)} of {n} outputs")
        finally:
            stalled.close()


class RealClients(unittest.TestCase):
    def test_nbconvert_executes_a_notebook(self):
        cells = ['print "hello, world"', "get threads", "# a comment only"]
        nb = {
            "cells": [
                {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c}
                for c in cells
            ],
            "metadata": {"kernelspec": {"name": KERNEL, "display_name": "TileLab", "language": "tilelab"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "smoke.ipynb")
            with open(src, "w") as f:
                json.dump(nb, f)
            subprocess.run(
                [JUPYTER, "nbconvert", "--to", "notebook", "--execute", "--output", "out.ipynb", src],
                check=True, capture_output=True, timeout=120,
            )
            with open(os.path.join(d, "out.ipynb")) as f:
                out = json.load(f)
        c0, c1, c2 = out["cells"]
        self.assertIn("hello, world", "".join(c0["outputs"][0]["text"]))
        self.assertEqual(c1["outputs"][0]["output_type"], "execute_result")
        self.assertEqual(c2["outputs"], [])
        self.assertEqual([c["execution_count"] for c in out["cells"]], [1, 2, 3])

    def test_jupyter_console_answers_a_command(self):
        p = subprocess.run(
            [JUPYTER, "console", "--kernel", KERNEL, "--simple-prompt",
             "--ZMQTerminalInteractiveShell.confirm_exit=False"],
            input='print "hello from console"\nexit\n', capture_output=True, text=True, timeout=120,
        )
        self.assertIn("hello from console", p.stdout, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
