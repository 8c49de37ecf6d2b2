"""The services' collector settings (services.runtime.main.tune_gc)."""

from __future__ import annotations

import gc

from services.runtime.main import GC_THRESHOLDS, tune_gc


def test_start_up_is_frozen_and_young_objects_are_collected_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
