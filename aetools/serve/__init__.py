"""`aetools serve`: a local web page for every image task and for browsing near-duplicates, and the HTTP API
beside it (`pip install "aetools[serve]"`: FastAPI and uvicorn).

    from aetools.serve import create_app
    app = create_app(device="cpu", index_dir="photos/.aetools-index")   # an ASGI app: uvicorn.run(app)

app.py: the routes and the JSON errors; runner.py: an upload through a task's pipeline (networks loaded once,
one job at a time); duplicates.py: the groups of an index and thumbnails by index id; page.html: the page.
"""

from aetools.serve.app import create_app

__all__ = ["create_app"]
