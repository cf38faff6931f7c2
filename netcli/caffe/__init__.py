"""Caffe's binary files without protoc: the protobuf wire format (wire.py), weights and mean
files (caffemodel.py: NetParameter, BlobProto), and LMDB records (datum.py: Datum)."""
