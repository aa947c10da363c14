"""A package kept in the app's repository: installing it needs no index."""


def hello(name):
    return f"Hello, {name}!"
