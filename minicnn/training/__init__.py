"""Training and evaluation: the fit loop and the recipes of the papers.

    trainer.py     Trainer (the fit loop), Recipe (the tricks), TrainingDiverged
    amp.py         mixed precision: GradScaler (dynamic loss scaling), cast_parameters (float16 compute)
    clipping.py    clip_grad_norm_ (global-norm gradient clipping, Inception-v3's 2.0)
    mixup.py       mixup (Bag of Tricks' α = 0.2), one_hot
    ema.py         ModelEMA (parameter moving average for evaluation, Inception-v3's 0.9999)
    metrics.py     top-k accuracy, AverageMeter
    evaluation.py  evaluate (loss, top-1, top-5), test-time protocols (centre crop, 10-crop, dense,
                   multi-scale, ensembles), confusion_matrix
    checkpoint.py  save_checkpoint / load_checkpoint (resume bit for bit)
    history.py     History (per-epoch records, written as JSON)

Label smoothing and distillation are losses (``minicnn.functional.cross_entropy``'s
``label_smoothing`` and ``distillation_loss``); the Trainer combines them.
"""
from .amp import GradScaler, cast_parameters
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .clipping import clip_grad_norm_, grad_norm
from .ema import ModelEMA
from .evaluation import (PROTOCOLS, center_crop, confusion_matrix, dense_proba, dense_scores, ensemble_proba,
                         evaluate, five_crop, hflip, multiscale_proba, predict_logits, predict_proba,
                         protocol_proba, resize, ten_crop)
from .history import History
from .metrics import AverageMeter, accuracy, topk_correct
from .mixup import mixup, one_hot
from .trainer import Recipe, Trainer, TrainingDiverged

__all__ = ["Trainer", "Recipe", "TrainingDiverged", "GradScaler", "cast_parameters", "clip_grad_norm_",
           "grad_norm", "ModelEMA", "mixup", "one_hot", "accuracy", "topk_correct", "AverageMeter", "evaluate",
           "predict_logits", "predict_proba", "protocol_proba", "center_crop", "five_crop", "ten_crop", "hflip",
           "resize", "dense_scores", "dense_proba", "multiscale_proba", "ensemble_proba", "confusion_matrix",
           "PROTOCOLS", "save_checkpoint", "load_checkpoint", "CheckpointError", "History"]
