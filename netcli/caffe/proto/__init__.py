"""pycaffe's `caffe.proto` package: `caffe_pb2` (needs protobuf: pip install 'netcli[caffe]')."""
