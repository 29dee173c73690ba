"""Simulated trials, for the demo, the tests and power analysis (never imported by the pipeline).

``trial``      image-level trial: raw BIDS, fMRIPrep-style derivatives and the ground truth
``images``     the images of one session (anatomy, lesion, activation, motion)
``roi_table``  ROI-table-level trials for power and calibration studies
``power``      power and type-I error of the group models over simulated trials
"""
