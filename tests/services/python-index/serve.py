"""A package index (PEP 503's simple API, as PyPI and the mirrors organizations run serve
it) holding the packages the requirements.txt tests install, served on 127.0.0.1.

    python3 tests/services/python-index/serve.py FOLDER

Writes the packages under FOLDER/simple/<name>/, prints the port on its first line of
stdout, then serves until it is killed. The packages are made here, not downloaded, so
the tests do not depend on what PyPI holds today:

- tessera-probe-fmt 1.0 and 2.0 (pure Python; 2.0 needs tessera-probe-words and pandas,
  which the runtime provides),
- tessera-probe-words 1.0 (pure Python, with a data file beside its module),
- tessera-probe-native 1.0 (only a CPython 3.11 manylinux wheel: native code),
- tessera-probe-sdist 1.0 (only a source archive whose setup.py prints
  TESSERA-SDIST-RAN: a push must never run it).
"""
import base64
import functools
import hashlib
import http.server
import io
import os
import sys
import tarfile
import zipfile


def digest(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel(folder, name, version, files, requires=(), tag="py3-none-any"):
    dist = f"{name.replace('-', '_')}-{version}"
    info = f"{dist}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    files = dict(files)
    files[f"{info}/METADATA"] = metadata
    files[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: tessera-tests\nRoot-Is-Purelib: "
        f"{'true' if tag.endswith('any') else 'false'}\nTag: {tag}\n"
    )
    encoded = {path: text.encode() for path, text in files.items()}
    record = "".join(f"{p},sha256={digest(d)},{len(d)}\n" for p, d in encoded.items())
    encoded[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    out = os.path.join(folder, "simple", name)
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(os.path.join(out, f"{dist}-{tag}.whl"), "w") as archive:
        for path, data in encoded.items():
            archive.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)


def sdist(folder, name, version, setup_py):
    base = f"{name.replace('-', '_')}-{version}"
    out = os.path.join(folder, "simple", name)
    os.makedirs(out, exist_ok=True)
    with tarfile.open(os.path.join(out, f"{base}.tar.gz"), "w:gz") as archive:
        for path, text in {
            f"{base}/setup.py": setup_py,
            f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        }.items():
            data = text.encode()
            member = tarfile.TarInfo(path)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


def build(folder):
    wheel(folder, "tessera-probe-fmt", "1.0", {
        "tessera_probe_fmt/__init__.py": "VERSION = '1.0'\n\ndef shout(text):\n    return text.upper()\n",
    })
    wheel(folder, "tessera-probe-fmt", "2.0", {
        "tessera_probe_fmt/__init__.py": (
            "import pandas\nfrom tessera_probe_words import WORDS\n\nVERSION = '2.0'\n\n"
            "def shout(text):\n"
            "    return f\"{text.upper()}! ({WORDS[0]}, pandas {pandas.__version__.split('.')[0]})\"\n"
        ),
    }, requires=["tessera-probe-words>=1", "pandas>=2"])
    wheel(folder, "tessera-probe-words", "1.0", {
        "tessera_probe_words/__init__.py": (
            "import pathlib\n\n"
            "WORDS = pathlib.Path(__file__).with_name('words.txt').read_text().split()\n"
        ),
        "tessera_probe_words/words.txt": "alpha beta gamma\n",
    })
    wheel(folder, "tessera-probe-native", "1.0", {
        "tessera_probe_native/__init__.py": "",
    }, tag="cp311-cp311-manylinux_2_17_x86_64")
    sdist(folder, "tessera-probe-sdist", "1.0",
          "print('TESSERA-SDIST-RAN')\nraise SystemExit('TESSERA-SDIST-RAN')\n")


def main():
    folder = os.path.abspath(sys.argv[1])
    build(folder)
    handler = functools.partial(QuietHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


main()
