from services.runtime.main import run

from .app import HTTP_PORT, NAME, create_app

run(NAME, HTTP_PORT, create_app)
