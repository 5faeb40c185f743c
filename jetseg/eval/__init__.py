"""Accuracy of a model on labelled data; runs on a Jetson, to measure the engine that flies.

    datasets    readers for CamVid, Cityscapes, COCO, KITTI road, drone and digit sets
    metrics     confusion matrix, IoU, mIoU (one definition), accuracies
    evaluate    a Segmenter over a dataset -> EvalResult (class mapping by name)
    report      the table, eval.json and the IoU / confusion charts
"""
