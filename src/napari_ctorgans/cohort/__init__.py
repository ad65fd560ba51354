"""Cohort processing on Dask: label or predict hundreds of scans, one task per scan.

The engine is ``dask.distributed``: by default a :class:`~distributed.LocalCluster` sized to the machine (one
single-threaded worker process per core); given the address of an existing scheduler (``tcp://host:8786``) the
scans run on that cluster instead. Every scan is a task; a scan that fails is reported in the summary and does not
stop the others. Outputs are written atomically (:func:`napari_ctorgans.io.write_labels`) followed by a small JSON
sidecar, so a re-run skips the scans whose outputs are complete and redoes the others.

Nothing a user has is replaced by mistake: before any work starts, outputs that two scans would share (``scan.nii.gz``
beside ``scan.nrrd``, ``abd1.nii.gz`` beside a DICOM folder ``abd1/``) and outputs that would replace an input or
land inside a DICOM series folder are refused with the list of clashes (:func:`check_outputs`). The sidecar records
the input's path, size and modification time; an output whose sidecar names another input, or an input that
changed since, is redone; a file in an output's place that no cohort run wrote (no sidecar) is left alone and its
scan reported as failed, unless ``overwrite``. The local cluster speaks TLS with temporary credentials and serves
no HTTP port (:mod:`napari_ctorgans._dask_cluster`).

Errors are handled in two ways:

* problems of the scan itself (unreadable or corrupted file, not a CT, no lungs found, a checkpoint that does not
  fit): the task returns a ``failed`` row at once; running it again would fail the same way.
* problems of the machine (a worker killed for using too much memory, a lost node, ``MemoryError``, I/O errors):
  the task is retried up to ``retries`` times, possibly on another worker, then reported as ``failed``.

The parts: :mod:`._inputs` (finding scans, naming outputs, refusing clashes), :mod:`._sidecar` (completion
sidecars), :mod:`._summary` (:class:`CohortRow`, :class:`CohortSummary`), :mod:`._task` (:func:`process_scan`, the
function the workers run) and :mod:`._runner` (:func:`run_cohort` on Dask); every name is importable from here.
"""

from ._inputs import (
    IMAGE_SUFFIXES,
    LIST_SUFFIXES,
    OUTPUT_SUFFIX,
    TASKS,
    _has_dicom,
    _is_output_name,
    _path_key,
    _read_list,
    _scan_folder,
    _stem,
    _suffix,
    check_outputs,
    find_inputs,
    output_name,
    output_paths,
)
from ._runner import _check_arguments, _local_cluster, _plan, _progress_bar, _run_tasks, run_cohort
from ._sidecar import SIDECAR, _foreign, _same_input, _write_json, input_record, is_complete, sidecar_path
from ._summary import CohortRow, CohortSummary
from ._task import _DATA_ERRORS, _PREDICTORS, _compute, _organ_values, _predictor, process_scan

__all__ = [
    "TASKS",
    "CohortRow",
    "CohortSummary",
    "find_inputs",
    "output_name",
    "output_paths",
    "check_outputs",
    "input_record",
    "is_complete",
    "process_scan",
    "run_cohort",
]
