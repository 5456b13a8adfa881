"""The CPU peak-memory meter sees a transient allocation made during "training".

    .venv/bin/python -m pytest tests/unit/test_runner_memory.py
"""

from runners._memory import PeakMemoryMeter

MIB = 1024**2


def test_cpu_meter_reports_a_freed_peak_above_the_baseline():
    meter = PeakMemoryMeter("cpu")
    meter.start()
    block = bytearray(256 * MIB)  # touched (zero-filled), then freed before stop()
    del block
    peak = meter.stop()
    assert peak.device == "cpu"
    assert 0.2 <= peak.rss_delta_gib < 1.0, peak
    assert peak.rss_peak_gib >= peak.rss_delta_gib

