"""The mark of a twin that is slower than the numpy reference by design, with the reason.

    @slower_than_numpy("one sentence: why, and what to use instead")
    def tanh_forward(x, out): ...

The sentence is written once, here in the twin's module: it opens the function's docstring, and
`fasttrain bench` prints it under its table beside the twin's rows (the function's
`slower_than_numpy` attribute; fasttrain/bench/harness.py reads it).
"""
import inspect

PREFIX = "Slower than the numpy reference, and meant to stay so: "


def slower_than_numpy(why: str):
    """Mark a backend function as slower than the reference by design, for `why`."""
    if not why or not why.strip():
        raise ValueError("slower_than_numpy needs the reason")

    def mark(fn):
        fn.slower_than_numpy = why
        rest = inspect.cleandoc(fn.__doc__ or "")
        fn.__doc__ = PREFIX + why + ("\n\n" + rest if rest else "")
        return fn
    return mark
