"""A PEP 517 backend in a few lines: zips the `greeting` package as a wheel."""
import os
import zipfile

NAME, VERSION = "greeting", "1.0"
TAG = "py3-none-any"


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    filename = f"{NAME}-{VERSION}-{TAG}.whl"
    info = f"{NAME}-{VERSION}.dist-info"
    root = os.path.dirname(os.path.abspath(__file__))
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as wheel:
        for entry in sorted(os.listdir(os.path.join(root, NAME))):
            if entry.endswith(".py"):
                wheel.write(os.path.join(root, NAME, entry), f"{NAME}/{entry}")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n")
        wheel.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: wheel_backend\nRoot-Is-Purelib: true\nTag: {TAG}\n")
        wheel.writestr(f"{info}/RECORD", "")
    return filename
