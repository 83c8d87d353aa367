"""Serve a GGUF model with llama.cpp's own HTTP server (the `xllamacpp` package), until killed.

Run with the Python of the venv that has xllamacpp (scripts/install-llamacpp.sh):

    python llama_serve.py MODEL.gguf PORT ALIAS [--ctx N]

It is a BASE model (research/real-chain.md): no chat template, never an end of text, so every
answer is capped server-wide by a grammar (at most 60 plain characters, then `stop`); the
wire format is unchanged. Prints "listening" once the port is bound.
"""

from __future__ import annotations

import sys
import threading


def main(argv: list[str]) -> int:
    import xllamacpp as xlc

    model, port, alias = argv[0], int(argv[1]), argv[2]
    ctx = int(argv[argv.index("--ctx") + 1]) if "--ctx" in argv else 4096
    p = xlc.CommonParams()
    p.model.path = model
    p.hostnames = ["127.0.0.1"]
    p.port = port
    p.n_ctx = ctx
    p.n_predict = 64  # more than the grammar allows (60 characters): answers end with `stop`
    p.n_parallel = 2
    p.cpuparams.n_threads = 2
    p.cpuparams_batch.n_threads = 2
    p.model_alias = {alias}
    p.sampling.grammar = xlc.CommonGrammar(
        xlc.common_grammar_type.COMMON_GRAMMAR_TYPE_USER,
        "root ::= [a-zA-Z0-9 ,.:;!?()-]{1,60}",
    )
    server = xlc.Server(p)  # serves in its own threads until the process ends
    print("listening", server.listening_address, flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
