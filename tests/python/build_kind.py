"""What kind of build a test drives: the tests shorten their inputs for slow builds."""
import os


def slow_build(binary):
    """True when `binary` comes from a Debug or sanitizer build (read from the CMakeCache.txt
    beside it), which runs the model some 20 times slower."""
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(binary)), "CMakeCache.txt")) as f:
            cache = f.read()
    except OSError:
        return False
    return ("CMAKE_BUILD_TYPE:STRING=Debug" in cache or "RINGKV_SANITIZE:BOOL=ON" in cache
            or "-fsanitize" in cache)
