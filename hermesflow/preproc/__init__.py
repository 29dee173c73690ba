"""Preprocessing: every source ends in the same fMRIPrep-layout contract.

``collect``   find and check one session's preprocessed files (the contract)
``confounds`` fMRIPrep's confounds table and framewise displacement
``native``    hermesflow's own antspyx preprocessing (``--preproc native``)
``fmriprep``  fMRIPrep in a container, one run per participant (``--preproc fmriprep``)
"""
