"""ReLU's passes over a share's rows, as the share's thread calls them (layers/neuron.py): the
kernels themselves (relu.py), or, where that thread leads a team with helpers (exec/team.py), the
same kernels in blocks of numbers as team jobs (eltwise_team.py). The same bits either way. k:
the slope (first) in the arrays' dtype, an array, as a job reads it."""
from . import eltwise_team, relu
from .team_call import team_call


def _forward(x, y, k):
    relu.relu_forward(x, y, k[0])


def _backward(y, dy, dx, k):
    relu.relu_backward(y, dy, dx, k[0])


def relu_forward(x, y, k):
    """relu.relu_forward(x, y, k[0]) on flat arrays, in tiles where there are helpers."""
    team_call(eltwise_team.relu_forward_job, _forward, x, y, k)


def relu_backward(y, dy, dx, k):
    """relu.relu_backward(y, dy, dx, k[0]) on flat arrays, in tiles where there are helpers."""
    team_call(eltwise_team.relu_backward_job, _backward, y, dy, dx, k)
