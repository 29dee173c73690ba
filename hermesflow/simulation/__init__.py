"""Simulated trials, for the demo, the tests and power analysis (never imported by the pipeline).

``trial``      image-level trial: raw BIDS, fMRIPrep-style derivatives and the ground truth
``images``     the images of one session (anatomy, lesion, activation, motion)
``truth``      where activation is placed (not the measuring atlas) and what the ROIs can see
``head``       skull-on T1w images and oblique scanner affines of the raw data
``pool``       participants simulated side by side in forked processes (same bytes)
``roi_table``  ROI-table-level trials for power and calibration studies
``power``      power and type-I error of the group models over simulated trials
"""
