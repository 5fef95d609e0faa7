# bb starts your server with `sh run.sh` in /app of the course's python image (Python 3.11,
# no Dockerfile needed), with PORT set. Run it yourself the same way: PORT=8000 sh run.sh
exec python server.py
