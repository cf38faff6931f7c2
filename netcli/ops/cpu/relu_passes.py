"""ReLU's passes over a share's rows, as the share's thread calls them (layers/neuron.py): the
kernels themselves (relu.py), or, where that thread leads a team with helpers (exec/team.py) and
there are team_call.PASS_NUMBERS numbers or more, the same kernels in blocks of numbers as team
jobs (eltwise_team.py). The same bits either way. k: the slope (first) in the arrays' dtype, an
array, as a job reads it."""
from . import eltwise_team, relu, team_call


def _forward(x, y, k):
    relu.relu_forward(x, y, k[0])


def _backward(y, dy, dx, k):
    relu.relu_backward(y, dy, dx, k[0])


def relu_forward(x, y, k):
    """relu.relu_forward(x, y, k[0]) on flat arrays, in tiles where there are helpers."""
    if x.size < team_call.PASS_NUMBERS:
        relu.relu_forward(x, y, k[0])
        return
    team_call.team_call(eltwise_team.relu_forward_job, _forward, x, y, k)


def relu_backward(y, dy, dx, k):
    """relu.relu_backward(y, dy, dx, k[0]) on flat arrays, in tiles where there are helpers."""
    if y.size < team_call.PASS_NUMBERS:
        relu.relu_backward(y, dy, dx, k[0])
        return
    team_call.team_call(eltwise_team.relu_backward_job, _backward, y, dy, dx, k)
