"""The compatibility contract: the exact REST calls each tool version makes, recorded through a
loopback reverse proxy, locked under fixtures/contracts/ and diffed on every recorded run."""
