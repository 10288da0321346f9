"""Every operation of minicnn, importable as ``import minicnn.functional as F``.

One family per file, each a set of ``Function`` subclasses (forward and backward side by side)
plus the lower-case functions users call: ``F.conv2d``, ``F.max_pool2d``, ``F.relu`` …
"""
from .math import (abs, add, argmax, astype, broadcast_to, cat, clip, concat, concatenate, div, exp,
                   flatten, getitem, log, matmul, max, mean, min, mul, neg, pad, pow, reshape, sqrt,
                   stack, sub, sum, sum_to, transpose, var)
from .linear import linear
from .norm import batch_norm, batch_norm_relu, local_response_norm
from .pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, global_avg_pool2d, max_pool2d,
                   pool_output_size)
from .activation import log_softmax, relu, relu6, sigmoid, softmax, tanh
from .conv import conv2d
from .dropout import dropout
from .loss import cross_entropy, distillation_loss, kl_div, mse_loss, nll_loss
from .im2col import col2im, conv_output_size, im2col
