"""Atomic writes (`gpt2_edu.atomic`): the errors that name the file, the cause and the fix."""

import errno
import re

import pytest

from gpt2_edu.atomic import WriteError, atomic_write


def test_writing_into_a_missing_folder_is_a_write_error_that_says_so(tmp_path):
    target = tmp_path / "no-such-folder" / "x.txt"
    assert issubclass(WriteError, OSError)  # code that catches OSError keeps working
    with pytest.raises(WriteError, match=re.escape(f"the folder does not exist while writing {target}")) as caught:
        atomic_write(target, "x")
    assert caught.value.errno == errno.ENOENT
