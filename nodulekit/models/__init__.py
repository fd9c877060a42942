"""The CNNs, each a plain ``torch.nn.Module`` that knows nothing about files."""
