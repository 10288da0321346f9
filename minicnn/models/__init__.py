"""The networks of the five papers, built by name or by function.

    from minicnn import models
    net = models.vgg16(num_classes=10, small_input=True)
    net = models.get_model("alexnet_paper")             # the same, by name (the CLI does this)
    models.summary(net, (3, 227, 227))                  # per-layer shapes, parameters, multiply-adds

    alexnet.py    alexnet (torchvision's), alexnet_paper (the 2012 network, 2 groups, LRN)
    vgg.py        vgg11 … vgg19 (+ _bn), vgg11_lrn (A-LRN), vgg_c (+ _bn); fc_to_conv; init_from_vgg_a
    mobilenet.py  mobilenet_v1
    resnet.py     resnet18 … resnet152 (shortcut A/B/C, ResNet-B/C/D), CIFAR resnet20 … resnet110,
                  plain20 … plain110
    senet.py      se_resnet18 … se_resnet152, se_resnet20
    inception.py  inception_v3 (+ auxiliary head), inception_loss
    registry.py   register, get_model, list_models
    summary.py    count_parameters, summary, the too-small-input check

Every constructor takes num_classes (1000), in_channels (3) and small_input (False: the ImageNet
network; True: the 28×28 / 32×32 variant of papers.md §9).

The generic builders resnet.resnet(depth, ...) and senet.se_resnet(depth, ...) stay in their modules:
exporting them here would hide the submodules `models.resnet` and `models.senet` behind functions.
"""
from .registry import get_model, list_models, register
from .summary import (InputSizeError, InputTooSmallError, ModelSummary, check_input_size, count_parameters,
                      summary)
from .alexnet import AlexNet, alexnet, alexnet_paper
from .vgg import (VGG, VGG_CONFIGS, FullyConvolutional, fc_to_conv, init_from_vgg_a, vgg, vgg11, vgg11_bn,
                  vgg11_lrn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn, vgg_c, vgg_c_bn)
from .mobilenet import MobileNetV1, mobilenet_v1
from .resnet import (ResNet, cifar_resnet, plain20, plain32, plain44, plain56, plain110, resnet18,
                     resnet20, resnet32, resnet34, resnet44, resnet50, resnet56, resnet101, resnet110, resnet152)
from .senet import se_resnet18, se_resnet20, se_resnet34, se_resnet50, se_resnet101, se_resnet152
from .inception import Inception3, inception_loss, inception_v3
