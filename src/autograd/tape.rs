//! The tape, variables, and the reverse walk.
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::ops::Op;
use super::param::{Param, ParamId};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Where a leaf's gradient goes: a parameter, or input slot k of a checkpointed block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum LeafKey {
    Param(ParamId),
    Input(usize),
}

pub(crate) struct Node {
    pub op: Op,
    /// For each input: the node producing it, when that input needs a gradient.
    pub inputs: Vec<Option<usize>>,
    /// Input shapes: gradients come back in the shape of the input they belong to.
    pub shapes: Vec<Vec<usize>>,
}

pub(crate) struct TapeInner {
    pub nodes: Vec<Node>,
    pub enabled: bool,
}

/// A recording of one forward pass. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct Tape {
    pub(crate) inner: Rc<RefCell<TapeInner>>,
}

/// A value in a forward pass: a tensor plus the tape node that made it (if any
/// trainable parameter lies below it).
#[derive(Clone)]
pub struct Var {
    pub value: Tensor,
    pub(crate) node: Option<usize>,
    pub(crate) tape: Tape,
}

/// Gradients of trainable parameters, keyed by parameter id.
#[derive(Default)]
pub struct Grads {
    pub(crate) map: HashMap<LeafKey, Tensor>,
}

impl Grads {
    pub fn get(&self, id: ParamId) -> Option<&Tensor> {
        self.map.get(&LeafKey::Param(id))
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn param_ids(&self) -> Vec<ParamId> {
        let mut ids: Vec<ParamId> = self
            .map
            .keys()
            .filter_map(|k| match k {
                LeafKey::Param(p) => Some(*p),
                LeafKey::Input(_) => None,
            })
            .collect();
        ids.sort();
        ids
    }
    /// Sum of squares of every gradient, as a device scalar (no readback).
    pub fn sumsq(&self) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for id in self.param_ids() {
            let s = self.get(id).unwrap().sumsq()?;
            total = Some(match total {
                None => s,
                Some(t) => t.add(&s)?,
            });
        }
        Ok(total)
    }
    pub(crate) fn accumulate(&mut self, key: LeafKey, g: Tensor) -> Result<()> {
        let g = match self.map.remove(&key) {
            Some(prev) => prev.add(&g)?,
            None => g,
        };
        self.map.insert(key, g);
        Ok(())
    }
}

impl Default for Tape {
    fn default() -> Self {
        Self::new()
    }
}

impl Tape {
    /// A recording tape (training).
    pub fn new() -> Tape {
        Tape {
            inner: Rc::new(RefCell::new(TapeInner {
                nodes: Vec::new(),
                enabled: true,
            })),
        }
    }
    /// A tape that records nothing (inference): ops only compute.
    pub fn inference() -> Tape {
        Tape {
            inner: Rc::new(RefCell::new(TapeInner {
                nodes: Vec::new(),
                enabled: false,
            })),
        }
    }
    pub fn is_recording(&self) -> bool {
        self.inner.borrow().enabled
    }
    pub fn len(&self) -> usize {
        self.inner.borrow().nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A constant input (data, frozen values): never gets a gradient.
    pub fn constant(&self, t: Tensor) -> Var {
        Var {
            value: t,
            node: None,
            tape: self.clone(),
        }
    }

    /// A parameter: a gradient leaf when trainable (and recording), else a constant.
    pub fn param(&self, p: &Param) -> Var {
        if p.trainable {
            self.leaf(p.value.clone(), LeafKey::Param(p.id))
        } else {
            self.constant(p.value.clone())
        }
    }

    pub(crate) fn leaf(&self, t: Tensor, key: LeafKey) -> Var {
        let node = self.push(Op::Leaf(key), vec![], vec![]);
        Var {
            value: t,
            node,
            tape: self.clone(),
        }
    }

    /// Record `op` if recording and any input needs a gradient; returns its node.
    pub(crate) fn push(&self, op: Op, inputs: Vec<Option<usize>>, shapes: Vec<Vec<usize>>) -> Option<usize> {
        let mut inner = self.inner.borrow_mut();
        let is_leaf = matches!(op, Op::Leaf(_));
        if !inner.enabled || (!is_leaf && inputs.iter().all(|i| i.is_none())) {
            return None;
        }
        inner.nodes.push(Node { op, inputs, shapes });
        Some(inner.nodes.len() - 1)
    }

    /// Gradients of the scalar `loss` (a [1] tensor) for every trainable parameter.
    pub fn backward(&self, loss: &Var) -> Result<Grads> {
        if loss.value.numel() != 1 {
            return Err(Error::shape(
                "backward",
                format!("loss must be a single value, got {:?}", loss.value.shape()),
            ));
        }
        let seed = Tensor::full(loss.value.shape(), 1.0, loss.value.device())?;
        self.backward_from(loss, seed)
    }

    /// Reverse walk from `out` with upstream gradient `dout`.
    pub fn backward_from(&self, out: &Var, dout: Tensor) -> Result<Grads> {
        let mut grads = Grads::default();
        let Some(start) = out.node else {
            return Ok(grads); // nothing trainable below: no gradients
        };
        // Take the nodes so saved tensors can be dropped one by one as we go.
        let nodes: Vec<Node> = std::mem::take(&mut self.inner.borrow_mut().nodes);
        let mut pending: Vec<Option<Tensor>> = (0..nodes.len()).map(|_| None).collect();
        pending[start] = Some(dout);
        for (i, node) in nodes.into_iter().enumerate().take(start + 1).rev() {
            let Some(dy) = pending[i].take() else { continue };
            if let Op::Leaf(key) = node.op {
                grads.accumulate(key, dy)?;
                continue;
            }
            let needs: Vec<bool> = node.inputs.iter().map(|x| x.is_some()).collect();
            let dins = node.op.backward(&dy, &needs, &mut grads)?;
            for ((slot, din), shape) in node.inputs.iter().zip(dins).zip(&node.shapes) {
                if let (Some(j), Some(d)) = (slot, din) {
                    let d = if d.shape() == shape.as_slice() {
                        d
                    } else {
                        d.reshape(shape)?
                    };
                    pending[*j] = Some(match pending[*j].take() {
                        Some(prev) => prev.add(&d)?,
                        None => d,
                    });
                }
            }
            // `node` (with its saved activations) is dropped here.
        }
        Ok(grads)
    }

    /// Run `f` on `inputs` without keeping its activations; backward reruns it.
    /// Parameters used inside `f` must be passed to it through `tape.param` as usual
    /// (their gradients reach the outer [`Grads`]).
    pub fn checkpoint<F>(&self, inputs: &[&Var], f: F) -> Result<Var>
    where
        F: Fn(&Tape, &[Var]) -> Result<Var> + 'static,
    {
        let needs_grad = self.is_recording();
        let off = Tape::inference();
        let xs: Vec<Var> = inputs.iter().map(|v| off.constant(v.value.clone())).collect();
        let y = f(&off, &xs)?;
        if !needs_grad {
            return Ok(Var {
                value: y.value,
                node: None,
                tape: self.clone(),
            });
        }
        let saved: Vec<Tensor> = inputs.iter().map(|v| v.value.clone()).collect();
        let op = Op::Checkpoint {
            f: Rc::new(f),
            inputs: saved,
        };
        // A block holding trainable params must be recorded even if no input needs grad.
        let inner_ids = inputs.iter().map(|v| v.node).collect::<Vec<_>>();
        let shapes = inputs.iter().map(|v| v.shape().to_vec()).collect();
        let node = {
            let mut inner = self.inner.borrow_mut();
            inner.nodes.push(Node {
                op,
                inputs: inner_ids,
                shapes,
            });
            Some(inner.nodes.len() - 1)
        };
        Ok(Var {
            value: y.value,
            node,
            tape: self.clone(),
        })
    }
}

impl Var {
    pub fn tape(&self) -> &Tape {
        &self.tape
    }
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }
    pub fn requires_grad(&self) -> bool {
        self.node.is_some()
    }
}
