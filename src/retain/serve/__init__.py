"""``retain serve``: an OpenAI-compatible API over a home's champion (Starlette + uvicorn, extra ``retain[serve]``).

A thin layer above :mod:`retain.home`: it reads the champion through the home, swaps it atomically when the home
promotes or rolls back (:mod:`retain.serve.engine`), batches generation, and writes feedback into the home as
data (:mod:`retain.home.feedback`); it never trains. The routes and their checks are :mod:`retain.serve.app`
and :mod:`retain.serve.protocol`.
"""
