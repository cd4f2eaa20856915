"""pytorch-ssd's MobileNet-v1 SSD ("mb1-ssd") written for the tests from the architecture of
qfgaohao/pytorch-ssd (vision/ssd/mobilenetv1_ssd.py, mobilenetv1_ssd_config.py, box_utils.py),
with random weights, exported as jetson-inference's onnx_export.py does it (input ``input_0``,
outputs ``scores`` and ``boxes``, decoding inside the graph); and an independent NumPy version
of its Predictor (per-class hard NMS with candidate_size, iou_of with eps).

Nothing here is trtssd code: it is what users have, to check trtssd against.
"""
import math

import numpy as np

# mobilenetv1_ssd_config: image 300, mean 127, std 128, IoU 0.45, variances 0.1 / 0.2, and
# the six feature maps (size, shrinkage, box min, box max, aspect ratios)
IMAGE_SIZE = 300
IMAGE_MEAN = 127.0
IMAGE_STD = 128.0
IOU_THRESHOLD = 0.45
CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2
SPECS = ((19, 16, 60, 105, (2, 3)), (10, 32, 105, 150, (2, 3)), (5, 64, 150, 195, (2, 3)),
         (3, 100, 195, 240, (2, 3)), (2, 150, 240, 285, (2, 3)), (1, 300, 285, 330, (2, 3)))


def priors_cxcywh():
    """generate_ssd_priors(specs, 300, clamp=True): [3000, 4] (cx, cy, w, h)."""
    out = []
    for fm, shrink, bmin, bmax, ratios in SPECS:
        scale = IMAGE_SIZE / shrink
        for j in range(fm):
            for i in range(fm):
                cx, cy = (i + 0.5) / scale, (j + 0.5) / scale
                s = bmin / IMAGE_SIZE
                out.append([cx, cy, s, s])
                s2 = math.sqrt(bmax * bmin) / IMAGE_SIZE
                out.append([cx, cy, s2, s2])
                for r in ratios:
                    r = math.sqrt(r)
                    out.append([cx, cy, s * r, s / r])
                    out.append([cx, cy, s / r, s * r])
    return np.clip(np.asarray(out, np.float32), 0.0, 1.0)


def build_mb1_ssd(torch, num_classes=21, seed=0, sharpen=20.0):
    """The network in eval mode with is_test=True (softmax and box decoding in forward).
    ``sharpen`` scales the classification heads' weights so random weights give some
    confident scores (a trained network's are peaked too)."""
    nn = torch.nn
    torch.manual_seed(seed)

    def conv_bn(inp, oup, stride):
        return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False),
                             nn.BatchNorm2d(oup), nn.ReLU(inplace=True))

    def conv_dw(inp, oup, stride):
        return nn.Sequential(nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                             nn.BatchNorm2d(inp), nn.ReLU(inplace=True),
                             nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
                             nn.BatchNorm2d(oup), nn.ReLU(inplace=True))

    class SSD(nn.Module):
        def __init__(self):
            super(SSD, self).__init__()
            self.num_classes = num_classes
            self.base_net = nn.Sequential(
                conv_bn(3, 32, 2), conv_dw(32, 64, 1), conv_dw(64, 128, 2),
                conv_dw(128, 128, 1), conv_dw(128, 256, 2), conv_dw(256, 256, 1),
                conv_dw(256, 512, 2), conv_dw(512, 512, 1), conv_dw(512, 512, 1),
                conv_dw(512, 512, 1), conv_dw(512, 512, 1), conv_dw(512, 512, 1),
                conv_dw(512, 1024, 2), conv_dw(1024, 1024, 1))
            self.source_layer_indexes = [12, 14]
            self.extras = nn.ModuleList([
                nn.Sequential(nn.Conv2d(1024, 256, 1), nn.ReLU(),
                              nn.Conv2d(256, 512, 3, 2, 1), nn.ReLU()),
                nn.Sequential(nn.Conv2d(512, 128, 1), nn.ReLU(),
                              nn.Conv2d(128, 256, 3, 2, 1), nn.ReLU()),
                nn.Sequential(nn.Conv2d(256, 128, 1), nn.ReLU(),
                              nn.Conv2d(128, 256, 3, 2, 1), nn.ReLU()),
                nn.Sequential(nn.Conv2d(256, 128, 1), nn.ReLU(),
                              nn.Conv2d(128, 256, 3, 2, 1), nn.ReLU())])
            chans = (512, 1024, 512, 256, 256, 256)
            self.regression_headers = nn.ModuleList(
                [nn.Conv2d(c, 6 * 4, 3, padding=1) for c in chans])
            self.classification_headers = nn.ModuleList(
                [nn.Conv2d(c, 6 * num_classes, 3, padding=1) for c in chans])
            self.register_buffer("priors", torch.from_numpy(priors_cxcywh()))
            with torch.no_grad():
                for m in self.modules():       # random BN statistics, like a trained net's
                    if isinstance(m, nn.BatchNorm2d):
                        m.running_mean.uniform_(-0.1, 0.1)
                        m.running_var.uniform_(0.5, 1.5)
                        m.weight.uniform_(0.8, 1.6)
                        m.bias.uniform_(-0.1, 0.2)
                for h in self.classification_headers:
                    h.weight.mul_(sharpen)

        def compute_header(self, i, x):
            conf = self.classification_headers[i](x).permute(0, 2, 3, 1).contiguous()
            conf = conf.view(conf.size(0), -1, self.num_classes)
            loc = self.regression_headers[i](x).permute(0, 2, 3, 1).contiguous()
            loc = loc.view(loc.size(0), -1, 4)
            return conf, loc

        def forward(self, x):
            confidences, locations = [], []
            start, header = 0, 0
            for end in self.source_layer_indexes:
                for layer in self.base_net[start:end]:
                    x = layer(x)
                start = end
                c, l = self.compute_header(header, x)
                header += 1
                confidences.append(c)
                locations.append(l)
            for layer in self.extras:
                x = layer(x)
                c, l = self.compute_header(header, x)
                header += 1
                confidences.append(c)
                locations.append(l)
            confidences = torch.cat(confidences, 1)
            locations = torch.cat(locations, 1)
            confidences = torch.nn.functional.softmax(confidences, dim=2)
            # box_utils.convert_locations_to_boxes, then center_form_to_corner_form
            p = self.priors.unsqueeze(0)
            boxes = torch.cat([locations[..., :2] * CENTER_VARIANCE * p[..., 2:] + p[..., :2],
                               torch.exp(locations[..., 2:] * SIZE_VARIANCE) * p[..., 2:]],
                              dim=locations.dim() - 1)
            boxes = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2,
                               boxes[..., :2] + boxes[..., 2:] / 2], boxes.dim() - 1)
            return confidences, boxes

    return SSD().eval()


def export_onnx(torch, net, path, batch=1, dynamic_batch=False):
    """onnx_export.py's call: names input_0 / scores / boxes (optionally a dynamic batch)."""
    dummy = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE)
    kw = {}
    if dynamic_batch:
        kw["dynamic_axes"] = {"input_0": {0: "batch"}, "scores": {0: "batch"},
                              "boxes": {0: "batch"}}
    try:
        torch.onnx.export(net, dummy, path, input_names=["input_0"],
                          output_names=["scores", "boxes"], opset_version=11, dynamo=False,
                          **kw)
    except TypeError:    # a torch without the dynamo switch
        torch.onnx.export(net, dummy, path, input_names=["input_0"],
                          output_names=["scores", "boxes"], opset_version=11, **kw)
    return path


def preprocess(rgb):
    """pytorch-ssd's PredictionTransform: cv2.resize to 300x300, (x - 127) / 128, CHW."""
    import cv2
    img = cv2.resize(rgb, (IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    return ((img - IMAGE_MEAN) / IMAGE_STD).transpose(2, 0, 1).copy()


def _area(lt, rb):
    hw = np.clip(rb - lt, 0.0, None)
    return hw[..., 0] * hw[..., 1]


def iou_of(boxes0, boxes1, eps=np.float32(1e-5)):
    lt = np.maximum(boxes0[..., :2], boxes1[..., :2])
    rb = np.minimum(boxes0[..., 2:], boxes1[..., 2:])
    overlap = _area(lt, rb)
    a0 = _area(boxes0[..., :2], boxes0[..., 2:])
    a1 = _area(boxes1[..., :2], boxes1[..., 2:])
    return overlap / (a0 + a1 - overlap + eps)


def hard_nms(box_scores, iou_threshold, top_k=-1, candidate_size=200):
    scores = box_scores[:, -1]
    boxes = box_scores[:, :-1]
    picked = []
    indexes = np.argsort(-scores, kind="stable")[:candidate_size]
    while len(indexes) > 0:
        current = indexes[0]
        picked.append(int(current))
        if 0 < top_k == len(picked) or len(indexes) == 1:
            break
        rest = indexes[1:]
        iou = iou_of(boxes[rest], boxes[current][None])
        indexes = rest[iou <= iou_threshold]
    return box_scores[picked]


def predict(scores, boxes, width, height, prob_threshold, iou_threshold=IOU_THRESHOLD,
            candidate_size=200):
    """Predictor.predict on one frame's outputs ([A, C] softmaxed, [A, 4] corners in 0..1):
    (boxes [K, 4] pixels, labels [K], probs [K]), grouped by class as pytorch-ssd returns
    them."""
    out_boxes, out_labels = [], []
    for c in range(1, scores.shape[1]):
        probs = scores[:, c]
        mask = probs > np.float32(prob_threshold)
        if not mask.any():
            continue
        bp = np.concatenate([boxes[mask], probs[mask][:, None]], axis=1).astype(np.float32)
        bp = hard_nms(bp, iou_threshold, candidate_size=candidate_size)
        out_boxes.append(bp)
        out_labels += [c] * len(bp)
    if not out_boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32)
    bp = np.concatenate(out_boxes)
    px = bp[:, :4] * np.array([width, height, width, height], np.float32)
    return px, np.asarray(out_labels), bp[:, 4]
