"""A short seeded fuzz run of the two readers of user files (the long run
is ``make fuzz``; see tests/fuzzing.py for the property)."""
import pytest

import fuzzing


@pytest.mark.parametrize('reader, examples', [
    (fuzzing.fuzz_checkpoints, 400), (fuzzing.fuzz_annotations, 150)])
def test_mutated_files_load_or_raise_our_error(tmp_path, reader, examples):
    fuzzer = reader(str(tmp_path), examples, seed_value=0)
    counts = fuzzer.counts
    assert counts['anything else'] == 0, fuzzer.failures
    # the mutations reach both outcomes: neither all refused nor all read
    assert counts['loaded'] > 0 and counts['our error'] > 0, counts
    assert sum(counts.values()) >= examples
