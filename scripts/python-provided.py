"""Write the packages every Python app has, for pip to resolve requirements against.

    python3 scripts/python-provided.py LIB_ZIP SITE DASH_VERSION OUT

LIB_ZIP is the interpreter's standard library zip (its compiled-in packages' .dist-info
folders are in it), SITE the apps' shared site folder (plotly), DASH_VERSION the version
Tessera's own dash package answers to. OUT gets constraints.txt (`name==version+tessera`
per package) and, for each package, a wheel holding only its metadata: pip "installs" it to
satisfy an app's dependency on, say, pandas, and the deployer drops it again. The local
version label `+tessera` keeps pip from picking a real wheel of the same version from the
index. Called by scripts/wasi-python.sh.
"""
import base64
import email.parser
import hashlib
import os
import re
import sys
import zipfile


def provided(lib_zip, site):
    found = {}

    def add(text):
        meta = email.parser.Parser().parsestr(text, headersonly=True)
        found[meta["Name"]] = meta["Version"]

    with zipfile.ZipFile(lib_zip) as z:
        for name in z.namelist():
            if re.fullmatch(r"[^/]+\.dist-info/METADATA", name):
                add(z.read(name).decode("utf-8"))
    for entry in sorted(os.listdir(site)):
        metadata = os.path.join(site, entry, "METADATA")
        if entry.endswith(".dist-info") and os.path.isfile(metadata):
            with open(metadata, encoding="utf-8") as f:
                add(f.read())
    return found


def digest(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def stub_wheel(out, name, version):
    dist = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}"
    files = {
        f"{dist}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            "Summary: provided by Tessera's Python runtime\n"
        ).encode(),
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tessera\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ).encode(),
    }
    record = "".join(f"{path},sha256={digest(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist}.dist-info/RECORD"] = (record + f"{dist}.dist-info/RECORD,,\n").encode()
    with zipfile.ZipFile(os.path.join(out, f"{dist}-py3-none-any.whl"), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)


def main():
    lib_zip, site, dash_version, out = sys.argv[1:5]
    packages = provided(lib_zip, site)
    packages["dash"] = dash_version
    os.makedirs(out, exist_ok=True)
    lines = []
    for name, version in sorted(packages.items(), key=lambda item: item[0].lower()):
        stub_wheel(out, name, f"{version}+tessera")
        lines.append(f"{name}=={version}+tessera\n")
    with open(os.path.join(out, "constraints.txt"), "w", encoding="utf-8") as f:
        f.writelines(lines)
    print(f"wasi-python: {len(lines)} provided packages in {out}", file=sys.stderr)


main()
