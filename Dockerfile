# The quorumkv image: one static binary FROM scratch. No shell, no libc, no package
# manager: the binary and an empty data directory owned by the node's user, nothing else
# (the server makes no outgoing TLS connection to a public CA, so no certificates).
#
# The binary is built on the host, not inside the build, so the build pulls no image:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o dist/quorumkv ./cmd/quorumkv
#   docker build -t quorumkv .
#
# scripts/docker-build.sh runs both. CGO_ENABLED=0 matters: with cgo the binary links
# libc (the net package's resolver), which scratch does not have.
FROM scratch

COPY dist/quorumkv /quorumkv

# .dockerignore sends deploy/ as an empty directory; it becomes /data, owned by the node's
# user (scratch has no mkdir, and WORKDIR would make it root's). A named volume mounted
# there starts as a copy of it, with that owner.
COPY --chown=65532:65532 deploy /data

# Non-root, by number: there is no /etc/passwd to look a name up in.
USER 65532:65532
VOLUME /data

# Settings are QUORUMKV_<FLAG> variables (see 'quorumkv server -h'); the node's --id, and
# --rpc and --gossip at an address the other nodes can reach (not 0.0.0.0: it is the
# address announced to them), come from the deployment, e.g. deploy/compose.yaml.
ENV QUORUMKV_DATA=/data \
    QUORUMKV_HTTP=0.0.0.0:8080 \
    QUORUMKV_RESP=0.0.0.0:6379
EXPOSE 8080 6379 7070 7946 7946/udp

# Asks the node's GET /healthz at the address in QUORUMKV_HTTP.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/quorumkv", "healthcheck"]

# SIGTERM stops the node cleanly: requests in flight finish, the store is flushed and
# closed (within 10 s; give the container at least that before SIGKILL).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/quorumkv"]
CMD ["server"]
