"""Alert detectors split by family; `asinwatch.alerts.detectors.detect` runs them all."""
