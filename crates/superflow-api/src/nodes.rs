//! Job-graph nodes: how each kind of transformation becomes operators.
//!
//! A node knows its input's record type, so it can wrap the downstream consumer in its
//! own typed stage and either pass it up the chain or head a new operator.

use std::sync::Arc;

use superflow_core::Data;
use superflow_runtime::{
    Attach, BatchStream, BuildCtx, ChainOutput, NodeBuilder, NodeId, OneInputStage, SourceFunction,
    StageContext, TwoInputStage,
};

use crate::stages::Identity;

/// Makes the stage of a one-input node around its downstream consumer.
pub(crate) type StageFactory<I, O> = Arc<
    dyn Fn(&StageContext, &ChainOutput, Box<dyn OneInputStage<O>>) -> Box<dyn OneInputStage<I>>
        + Send
        + Sync,
>;

/// A one-input transformation (map, filter, process, keyed reduce...).
pub(crate) struct StageNode<I, O> {
    pub id: NodeId,
    pub input: Arc<dyn Attach<I>>,
    pub make: StageFactory<I, O>,
}

impl<I: Data, O: Data> Attach<O> for StageNode<I, O> {
    fn attach<'s>(
        &self,
        ctx: &mut BuildCtx<'s>,
        downstream: Box<dyn OneInputStage<O>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s> {
        chain.add_name(&ctx.graph().nodes[self.id].name);
        let stage_ctx = ctx.stage_context(self.id);
        let consumer = (self.make)(&stage_ctx, chain, downstream);
        if ctx.is_chained_to_input(self.id) {
            self.input.attach(ctx, consumer, chain)
        } else {
            ctx.build_unary(self.id, 0, consumer, chain)
        }
    }
}

impl<I: Data, O: Data> NodeBuilder for StageNode<I, O> {
    fn materialize<'s>(&self, ctx: &mut BuildCtx<'s>) -> BatchStream<'s> {
        let mut chain = ChainOutput::new();
        let tail = chain.tail::<O>();
        self.attach(ctx, tail, &mut chain)
    }
}

/// A source.
pub(crate) struct SourceNode<T> {
    pub id: NodeId,
    pub source: Arc<dyn SourceFunction<T>>,
}

impl<T: Data> NodeBuilder for SourceNode<T> {
    fn materialize<'s>(&self, ctx: &mut BuildCtx<'s>) -> BatchStream<'s> {
        ctx.build_source(self.id, Arc::clone(&self.source))
    }
}

impl<T: Data> Attach<T> for SourceNode<T> {
    fn attach<'s>(
        &self,
        ctx: &mut BuildCtx<'s>,
        downstream: Box<dyn OneInputStage<T>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s> {
        // Sources are never chained; a consumer reads their stream in its own operator.
        ctx.build_pipeline_from(self.id, downstream, chain)
    }
}

/// A union of streams of one type.
pub(crate) struct UnionNode<T> {
    pub id: NodeId,
    pub _type: std::marker::PhantomData<fn() -> T>,
}

impl<T: Data> NodeBuilder for UnionNode<T> {
    fn materialize<'s>(&self, ctx: &mut BuildCtx<'s>) -> BatchStream<'s> {
        let inputs = ctx.graph().nodes[self.id].inputs.clone();
        let mut streams = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            if ctx.plan().edges[self.id][index].router.is_none() {
                streams.push(ctx.stream(input.from));
            } else {
                let mut chain = ChainOutput::new();
                chain.add_name(&ctx.graph().nodes[self.id].name);
                let identity = Box::new(Identity {
                    next: chain.tail::<T>(),
                });
                streams.push(ctx.build_unary::<T>(self.id, index, identity, &mut chain));
            }
        }
        ctx.concatenate(streams)
    }
}

impl<T: Data> Attach<T> for UnionNode<T> {
    fn attach<'s>(
        &self,
        ctx: &mut BuildCtx<'s>,
        downstream: Box<dyn OneInputStage<T>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s> {
        ctx.build_pipeline_from(self.id, downstream, chain)
    }
}

/// Makes the stage of a two-input node around its downstream consumer.
pub(crate) type BinaryStageFactory<A, B, O> = Arc<
    dyn Fn(&StageContext, &ChainOutput, Box<dyn OneInputStage<O>>) -> Box<dyn TwoInputStage<A, B>>
        + Send
        + Sync,
>;

/// A two-input transformation (connect + co-map / co-flat-map).
pub(crate) struct BinaryNode<A, B, O> {
    pub id: NodeId,
    pub make: BinaryStageFactory<A, B, O>,
}

impl<A: Data, B: Data, O: Data> Attach<O> for BinaryNode<A, B, O> {
    fn attach<'s>(
        &self,
        ctx: &mut BuildCtx<'s>,
        downstream: Box<dyn OneInputStage<O>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s> {
        chain.add_name(&ctx.graph().nodes[self.id].name);
        let stage_ctx = ctx.stage_context(self.id);
        let consumer = (self.make)(&stage_ctx, chain, downstream);
        ctx.build_binary(self.id, consumer, chain)
    }
}

impl<A: Data, B: Data, O: Data> NodeBuilder for BinaryNode<A, B, O> {
    fn materialize<'s>(&self, ctx: &mut BuildCtx<'s>) -> BatchStream<'s> {
        let mut chain = ChainOutput::new();
        let tail = chain.tail::<O>();
        self.attach(ctx, tail, &mut chain)
    }
}

/// The side output `tag` of node `from`, as a stream of its own.
pub(crate) struct SideOutputNode<T> {
    pub id: NodeId,
    pub from: NodeId,
    pub tag: u32,
    pub _type: std::marker::PhantomData<fn() -> T>,
}

impl<T: Data> NodeBuilder for SideOutputNode<T> {
    fn materialize<'s>(&self, ctx: &mut BuildCtx<'s>) -> BatchStream<'s> {
        let name = ctx.graph().nodes[self.id].name.clone();
        ctx.build_side_output_selector(self.from, self.tag, &name)
    }
}

impl<T: Data> Attach<T> for SideOutputNode<T> {
    fn attach<'s>(
        &self,
        ctx: &mut BuildCtx<'s>,
        downstream: Box<dyn OneInputStage<T>>,
        chain: &mut ChainOutput,
    ) -> BatchStream<'s> {
        ctx.build_pipeline_from(self.id, downstream, chain)
    }
}
