#!/bin/bash
# fMRIPrep STAND-IN (hermesflow tests; see Containerfile).  Usage as fMRIPrep's:
#   fmriprep BIDS_DIR OUTPUT_DIR participant --participant-label L [L ...] [-w WORK] [options]
set -u
argv=("$@")
fixture=/opt/standin/derivatives
echo "fMRIPrep stand-in for hermesflow tests (NOT fMRIPrep) -- $(date -u +%FT%TZ)"

if [ $# -lt 3 ]; then
    echo "usage: fmriprep bids_dir output_dir participant [options]" >&2
    exit 2
fi
bids=$1 out=$2 level=$3
shift 3
if [ "$level" != participant ]; then
    echo "fmriprep: error: argument analysis_level: invalid choice: '$level'" >&2
    exit 2
fi
labels=() work="" licence=/opt/freesurfer/license.txt
while [ $# -gt 0 ]; do
    case $1 in
        --participant-label|--participant_label)
            shift
            while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do labels+=("${1#sub-}"); shift; done
            continue ;;
        -w|--work-dir) work=$2; shift 2; continue ;;
        --fs-license-file) licence=$2; shift 2; continue ;;
    esac
    shift
done
if [ ! -d "$bids" ]; then
    echo "fmriprep: error: Path does not exist: <$bids>." >&2
    exit 2
fi
if [ ! -f "$licence" ]; then
    echo "ERROR: a valid license file is required for FreeSurfer to run. ($licence)" >&2
    exit 1
fi
if [ ${#labels[@]} -eq 0 ]; then
    echo "fmriprep: error: this stand-in needs --participant-label" >&2
    exit 2
fi

mkdir -p "$out/.standin" || exit 1
[ -n "$work" ] && mkdir -p "$work/fmriprep_25_2_wf" && echo "stand-in" >"$work/fmriprep_25_2_wf/ran"
[ -f "$out/dataset_description.json" ] || cp "$fixture/dataset_description.json" "$out/"

for label in "${labels[@]}"; do
    # What fMRIPrep received, NUL-separated so every word comes back exactly.
    printf '%s\0' "${argv[@]}" >"$out/.standin/sub-${label}_argv"
    echo "$(id -u):$(id -g)" >"$out/.standin/sub-${label}_id"
    # The input must be read-only: record what a write attempt into it does.
    if msg=$(touch "$bids/.standin-write-test" 2>&1); then
        echo "WRITABLE" >"$out/.standin/sub-${label}_bids_write"
        rm -f "$bids/.standin-write-test"
    else
        echo "$msg" >"$out/.standin/sub-${label}_bids_write"
    fi
    echo "[node] sub-${label}: anat_fit_wf, bold_wf (stand-in: copying baked outputs)"
    if [ ! -d "$fixture/sub-${label}" ]; then
        echo "Traceback (most recent call last):"
        echo "  File \"/opt/standin/fmriprep\", line 1, in <module>"
        echo "RuntimeError: fMRIPrep stand-in: no outputs baked in for sub-${label}"
        echo "fMRIPrep failed: 1 nodes failed" >&2
        exit 1
    fi
    # cp -r (not -a): files belong to whoever runs the container, as fMRIPrep's would.
    cp -r "$fixture/sub-${label}" "$out/" || exit 1
    echo "<html><body>stand-in report for sub-${label}</body></html>" >"$out/sub-${label}.html"
done
echo "fMRIPrep finished successfully!"
