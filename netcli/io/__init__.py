"""Files in and out: the atomic writer (files.py), hostile-safe .npz reading (npzfile.py), weights
files (weights.py), and ONNX export (onnx_export.py, onnx_preprocess.py)."""
