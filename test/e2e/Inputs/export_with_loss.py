"""export_with_loss.py NAME OUT.onnx [--exporter dynamo|torchscript]

Exports bundled model NAME (weipipe.models, seed 0) wrapped so that it returns
its own loss: forward(input_ids, targets) = F.cross_entropy(logits, targets),
mean over the tokens, ignore_index -100, as users write it. Both exporters
turn it into SoftmaxCrossEntropyLoss.
"""
import argparse
import warnings

import torch
import torch.nn.functional as F

from weipipe.models import build_model


class WithLoss(torch.nn.Module):
    def __init__(self, name):
        super().__init__()
        self.model = build_model(name)

    def forward(self, input_ids, targets):
        logits = self.model(input_ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-100)


p = argparse.ArgumentParser()
p.add_argument("name")
p.add_argument("out")
p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo")
a = p.parse_args()
torch.manual_seed(0)
m = WithLoss(a.name).eval()
vocab = m.model.config.vocab_size
ids = torch.randint(0, vocab, (2, 16))
# A separate tensor: given the same tensor twice, the dynamo exporter merges
# the two inputs.
targets = torch.randint(0, vocab, (2, 16))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torch.onnx.export(m, (ids, targets), a.out, input_names=["input_ids", "targets"],
                      output_names=["loss"], dynamo=a.exporter == "dynamo",
                      **({} if a.exporter == "dynamo" else {"opset_version": 17}))
