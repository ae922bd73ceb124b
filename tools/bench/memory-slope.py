#!/usr/bin/env python3
"""Memory per concurrent stream of one route: `streamhost serve` (echo model
at 50 ms a token, 100 tokens), 100 then 1,000 concurrent streams, the
server's peak PSS (/proc/PID/smaps_rollup, sampled every 250 ms) during
each; prints the slope in KiB per stream.

    tools/bench/memory-slope.py BINARY PLUGIN_DIR PATH
    tools/bench/memory-slope.py target/release/streamhost <examples dir> '/redact?then=text-only,ndjson'
"""
import asyncio
import json
import subprocess
import sys
import threading
import time


def pss_kib(pid):
    with open(f'/proc/{pid}/smaps_rollup') as rollup:
        return next(int(line.split()[1]) for line in rollup if line.startswith('Pss:'))


async def stream(port, path, body):
    reader, writer = await asyncio.open_connection('127.0.0.1', port)
    head = f'POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n'
    writer.write(head.encode() + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    return response.startswith(b'HTTP/1.1 200')


async def burst(port, path, body, count):
    return sum(await asyncio.gather(*(stream(port, path, body) for _ in range(count))))


def peak_pss_during(pid, run):
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], pss_kib(pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample)
    sampler.start()
    succeeded = run()
    done.set()
    sampler.join()
    return succeeded, peak[0]


def main(binary, plugins, path):
    server = subprocess.Popen(
        [binary, 'serve', '--listen', '127.0.0.1:0', '--plugins', plugins, '--echo-delay-ms', '50'],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(server.stdout.readline().strip().rsplit(':', 1)[1])
        body = json.dumps({'prompt': ' '.join(['ab'] * 100)}).encode()
        asyncio.run(burst(port, path, body, 10))
        small_ok, small = peak_pss_during(server.pid, lambda: asyncio.run(burst(port, path, body, 100)))
        large_ok, large = peak_pss_during(server.pid, lambda: asyncio.run(burst(port, path, body, 1000)))
        print(f'{path}: {small_ok}/100 and {large_ok}/1000 succeeded; peak PSS {small} -> {large} KiB; '
              f'{(large - small) / 900:.1f} KiB per stream')
    finally:
        server.kill()
        server.wait()


if __name__ == '__main__':
    main(*sys.argv[1:4])
