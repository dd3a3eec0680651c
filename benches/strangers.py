"""What strangers cost the gateway (issue 25): its memory while 300 clients
each send a 1 MiB webhook body (unsigned, then with a well-formed signature
that does not match), and a healthy client's latency while 50 slow bodies
are held from another address.

Usage: python3 benches/strangers.py [target/release/channelgate]
The gateway runs on 127.0.0.1:18080 with a config of its own (written to a
temporary directory: [webhooks] on, server.max_connections_per_client =
1000 as the 300 come from one address; GitHub and Pusher are loopback
addresses nothing is asked of). Goals: under 64 MiB of growth; under
100 ms for the healthy client."""
import os, socket, subprocess, sys, tempfile, time, urllib.request

CONFIG = """
[server]
listen = "127.0.0.1:18080"
public_url = "http://127.0.0.1:18080"
max_connections_per_client = 1000
[pusher]
app_id = "1"
key = "bench-key"
secret = "bench-secret"
host = "127.0.0.1:9"
tls = false
[github]
client_id = "bench"
client_secret = "bench"
web_url = "http://127.0.0.1:9"
api_url = "http://127.0.0.1:9/api/v3"
[webhooks]
secret = "a-webhook-secret-for-the-bench"
[log]
level = "error"
"""

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/channelgate"
config = os.path.join(tempfile.mkdtemp(prefix="channelgate-strangers-"), "config.toml")
with open(config, "w") as f:
    f.write(CONFIG)
os.chmod(config, 0o600)
proc = subprocess.Popen([binary, "serve", "--config", config],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(100):
        try:
            urllib.request.urlopen("http://127.0.0.1:18080/healthz", timeout=1); break
        except Exception:
            time.sleep(0.1)

    def rss():
        for line in open(f"/proc/{proc.pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    base = rss()
    MIB = 1024 * 1024
    for label, sig in [("unsigned", None), ("wrong signature", "sha256=" + "0" * 64)]:
        socks = []
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", 18080))
            s.setblocking(False)
            head = ("POST /github/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "X-GitHub-Event: ping\r\nX-GitHub-Delivery: d%d\r\n" % i)
            if sig:
                head += "X-Hub-Signature-256: %s\r\n" % sig
            head += "Content-Length: %d\r\n\r\n" % MIB
            s.send(head.encode())
            socks.append(s)
        chunk = b" " * 65536
        # Push as much of each body as the server takes (it may stop reading).
        for _ in range(16):
            for s in socks:
                try:
                    s.send(chunk)
                except (BlockingIOError, OSError):
                    pass
        peak = 0
        for _ in range(16):
            time.sleep(0.25)
            peak = max(peak, rss())
        print(f"{label}: 300 bodies of 1 MiB held: RSS {base:.1f} -> now {rss():.1f}, peak {peak:.1f} MiB (+{peak-base:.1f})")
        for s in socks:
            s.close()
        time.sleep(3)

    slow = []
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", 18080))
        s.send(b"POST /pusher/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nsocket_id=1")
        slow.append(s)
    time.sleep(0.5)
    lat = []
    for _ in range(20):
        c = socket.socket(); c.bind(("127.0.0.2", 0)); c.connect(("127.0.0.1", 18080))
        t = time.perf_counter()
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = c.recv(4096)
        lat.append((time.perf_counter() - t) * 1000)
        c.close()
    lat.sort()
    print(f"healthy /healthz from another address under 50 slow bodies: median {lat[10]:.1f} ms, max {lat[-1]:.1f} ms")
finally:
    proc.terminate(); proc.wait()
