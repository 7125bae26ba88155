# detectron2's lazy Mask R-CNN R50-FPN 1x with noisy_mask's head and the Dice loss; everything
# else is the model zoo's. Evaluation is noisy_mask's (mask, box and boundary AP, faster-coco-eval):
# detectron2's COCOEvaluator needs its C++ ops, which a pure-Python detectron2 lacks.
#
#   python -m noisy_mask.train_net --config-file mask_rcnn_R_50_FPN_1x_dice.py --num-gpus 8 \
#       dataloader.train.dataset.names=my_train dataloader.test.dataset.names=my_val
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from noisy_mask import NoisyMaskRCNNConvUpsampleHead
from noisy_mask.evaluation.evaluator import CleanMaskEvaluator

_stock = model_zoo.get_config("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.py")
dataloader = _stock.dataloader
lr_multiplier = _stock.lr_multiplier
model = _stock.model
optimizer = _stock.optimizer
train = _stock.train

# The stock head's arguments stay; the class and the loss change (loss_options: the loss's
# keyword options, e.g. {"eps": 1e-6}; loss_weight multiplies loss_mask).
model.roi_heads.mask_head._target_ = NoisyMaskRCNNConvUpsampleHead
model.roi_heads.mask_head.loss_name = "dice"

dataloader.evaluator = L(CleanMaskEvaluator)(
    dataset_name="${..test.dataset.names}",
    output_dir="${...train.output_dir}/inference",
)
