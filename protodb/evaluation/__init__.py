"""Evaluation: dataset readers (VOC, Context, COCO-Object, folder, the test world) and the mIoU
harness with ablations (REFERENCE 1.9)."""
