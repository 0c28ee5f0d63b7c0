"""The LT4REC network (tf_keras): embeddings -> DLRM dot interactions -> maskable MLPs -> heads.

- The fields are the config spec's features, in spec order (`modules.spec`). One embedding table
  per vocabulary group (and per bucketised numeric feature); `id_list` features are mean-pooled
  over their non-padding ids (an empty list pools to zeros). A table narrower or wider than
  `embedding_dim` (`spec.groups.<group>.embedding_dim`) is projected to it by a learned matrix. A
  numeric feature's field is its (normalised) value times a learned vector.
- Interaction: the full F x F matrix of pairwise dot products of the F field embeddings, flattened
  (as in the original LT4REC), concatenated with the flattened embeddings.
- MLPs with ReLU whose kernels are the prunable set: `call(..., masks=[m0, m1, ...])` multiplies
  each kernel by its mask, so a masked connection is exactly zero in the forward pass. Dropout
  after every hidden layer on training steps. Which MLPs, and the softmax gates between them,
  follow `mtl.architecture` (`modules.experts`): one MLP for `lt4rec` and `shared_bottom`,
  experts, gates and a tower per task for `mmoe` and `ple`.
- One linear logit head per task on its last hidden layer, plus (with `linear_term`) a per-task
  linear term over every field (wide-and-deep's wide part: one weight per id and feature,
  mean-pooled over lists; one weight per numeric feature), which small data with rare ids learns
  faster than the deep part.
- `forward(..., with_penalty=True)` also returns each example's squared norm of the embedding and
  linear rows it looked up, for an L2 penalty that touches only those rows (lazy, like LazyAdam).
"""
import tensorflow as tf
import tf_keras as keras

from modules import experts as experts_lib
from modules.features import PAD_ID


def input_width(embedding_dim, fields):
    """Width of the MLP input: flattened embeddings plus the full interaction matrix."""
    return fields * embedding_dim + fields * fields


class LT4RecNetwork(keras.Model):
    """Shared dense base network with one logit head per task."""

    def __init__(self, vocab_sizes, tasks, spec, embedding_dim=16, hidden_units=(512, 256, 128),
                 dropout=0.0, linear_term=False, seed=0, architecture="lt4rec", experts=None,
                 **kwargs):
        """`vocab_sizes`: {table: rows} (`inputs.vocab_sizes`); `spec`: the config's spec;
        `architecture` and `experts`: `mtl.architecture` and `mtl.experts` (`modules.experts`)."""
        super().__init__(**kwargs)
        self.tasks = list(tasks)
        self.embedding_dim = embedding_dim
        self.fields = tuple(spec.fields())
        self._table_of = {f.name: f.table for f in spec.features if f.embedded}
        self._lists = frozenset(f.name for f in spec.of_kind("id_list"))
        numeric = [f.name for f in spec.features if not f.embedded]
        dims = spec.embedding_dims(embedding_dim)
        tables = sorted(vocab_sizes.items())
        self.tables = {
            group: keras.layers.Embedding(
                size, dims[group], name=f"embedding_{group}",
                embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + i))
            for i, (group, size) in enumerate(tables)}
        self.projections = {
            group: self.add_weight(
                name=f"projection_{group}", shape=(dims[group], embedding_dim),
                initializer=keras.initializers.GlorotNormal(seed=seed + 500 + i))
            for i, (group, _) in enumerate(tables) if dims[group] != embedding_dim}
        self.numeric_vectors = {
            name: self.add_weight(
                name=f"numeric_{name}", shape=(embedding_dim,),
                initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed + 400 + i))
            for i, name in enumerate(numeric)}
        self.layout = experts_lib.layout(architecture, self.tasks,
                                         input_width(embedding_dim, len(self.fields)),
                                         hidden_units, experts)
        self.kernels, self.biases = [], []
        for mlp in self.layout.mlps:
            for i, (fan_in, fan_out) in enumerate(mlp.layers):
                self.kernels.append(self.add_weight(
                    name=f"{mlp.name}_{i}/kernel", shape=(fan_in, fan_out),
                    initializer=keras.initializers.GlorotNormal(
                        seed=seed + 100 + len(self.biases))))
                self.biases.append(self.add_weight(
                    name=f"{mlp.name}_{i}/bias", shape=(fan_out,), initializer="zeros"))
        self.gates = {
            gate.name: (self.add_weight(
                name=f"{gate.name}/kernel", shape=(gate.fan_in, len(gate.experts)),
                initializer=keras.initializers.GlorotNormal(seed=seed + 600 + i)),
                self.add_weight(name=f"{gate.name}/bias", shape=(len(gate.experts),),
                                initializer="zeros"))
            for i, gate in enumerate(self.layout.gates)}
        self._reads = {task: experts_lib.reads(self.layout, task) for task in self.tasks}
        self.heads = {
            task: keras.layers.Dense(1, name=f"head_{task}",
                                     kernel_initializer=keras.initializers.GlorotNormal(
                                         seed=seed + 200 + i))
            for i, task in enumerate(self.tasks)}
        depth = max(len(mlp.layers) for mlp in self.layout.mlps)
        self.dropouts = [keras.layers.Dropout(dropout, seed=seed + 300 + i)
                         for i in range(depth)] if dropout else []
        self.linear = {
            task: {name: keras.layers.Embedding(
                vocab_sizes[table], 1, name=f"linear_{task}_{name}",
                embeddings_initializer="zeros") for name, table in self._table_of.items()}
            for task in self.tasks} if linear_term else {}
        self.numeric_linear = {
            task: {name: self.add_weight(name=f"linear_{task}_{name}", shape=(1,),
                                         initializer="zeros") for name in numeric}
            for task in self.tasks} if linear_term else {}
        for task, head in self.heads.items():
            head.build((None, self.layout.head_width))
        for table in list(self.tables.values()) + [
                t for per_task in self.linear.values() for t in per_task.values()]:
            table.build((None,))

    def table_of(self, feature):
        """The embedding table (vocabulary group or bucketised feature) `feature` looks up."""
        return self._table_of[feature]

    def prunable_weights(self):
        """The MLP kernels, in layer order: the set that masks apply to."""
        return list(self.kernels)

    def task_variables(self, task):
        """Variables a step of `task` may change: the embeddings and every MLP and gate its
        forward pass reads (`reads`; masks decide which kernel entries), and its own head and
        linear term."""
        shared = ([t.embeddings for t in self.tables.values()] + list(self.projections.values())
                  + list(self.numeric_vectors.values()))
        return shared + self._parts(lambda readers: task in readers) + self._heads_and_linear(task)

    def own_variables(self, task):
        """The variables only `task` uses: its head, its linear term, and the biases and gates
        of the MLPs and gates no other task reads (kernels are shared or own by their masks)."""
        kernels = {id(k) for k in self.kernels}
        return self._heads_and_linear(task) + [
            v for v in self._parts(lambda readers: readers == {task}) if id(v) not in kernels]

    def reads(self, task):
        """Per prunable kernel, whether `task`'s forward pass reads it."""
        return [mlp.name in self._reads[task] for mlp in self.layout.mlps for _ in mlp.layers]

    def _parts(self, keep):
        """Kernels, biases and gate weights of the parts whose set of reading tasks passes
        `keep`."""
        readers = {name: {t for t in self.tasks if name in self._reads[t]}
                   for name in [m.name for m in self.layout.mlps] + list(self.gates)}
        mlps = [v for mlp in self.layout.mlps if keep(readers[mlp.name])
                for i in range(mlp.first, mlp.first + len(mlp.layers))
                for v in (self.kernels[i], self.biases[i])]
        return mlps + [v for name, pair in self.gates.items() if keep(readers[name]) for v in pair]

    def _heads_and_linear(self, task):
        return (self.heads[task].trainable_weights
                + [t.embeddings for t in self.linear.get(task, {}).values()]
                + list(self.numeric_linear.get(task, {}).values()))

    def embed(self, inputs):
        """([batch, fields, dim] field embeddings, [batch] squared norm of the rows looked up)."""
        looked_up = [self._field(name, inputs) for name in self.fields]
        return (tf.stack([pooled for pooled, _ in looked_up], axis=1),
                tf.add_n([norm for _, norm in looked_up]))

    def _field(self, name, inputs):
        """(field embedding [batch, embedding_dim], [batch] squared norm of the rows it read)."""
        if name in self.numeric_vectors:
            value = tf.cast(inputs[name], tf.float32)
            return value[:, None] * self.numeric_vectors[name][None, :], tf.zeros_like(value)
        table = self._table_of[name]
        pooled, norm = _lookup(self.tables[table], name, inputs, name in self._lists)
        if table in self.projections:
            pooled = tf.matmul(pooled, self.projections[table])
        return pooled, norm

    def linear_logit(self, inputs, task):
        """([batch] linear term of `task`, [batch] squared norm of its weights looked up)."""
        looked_up = [_lookup(table, name, inputs, name in self._lists)
                     for name, table in self.linear[task].items()]
        numeric = [tf.cast(inputs[name], tf.float32) * weight[0]
                   for name, weight in self.numeric_linear[task].items()]
        terms = [tf.squeeze(pooled, axis=1) for pooled, _ in looked_up] + numeric
        norms = [norm for _, norm in looked_up]
        return tf.add_n(terms), tf.add_n(norms) if norms else tf.zeros_like(terms[0])

    def effective_kernels(self, masks=None):
        """The MLP kernels as the forward pass sees them: kernel * mask when masks are given."""
        if masks is None:
            return list(self.kernels)
        return [kernel * mask for kernel, mask in zip(self.kernels, masks)]

    def forward(self, inputs, task, kernels, training=False, with_penalty=False):
        """Logit [batch] of `task` with the given effective MLP `kernels`; with `with_penalty`,
        (logit, [batch] squared norm of every embedding and linear row the example looked up)."""
        emb, penalty = self.embed(inputs)

        def mlp_input():
            interactions = tf.matmul(emb, emb, transpose_b=True)
            return tf.concat([tf.reshape(emb, [tf.shape(emb)[0], -1]),
                              tf.reshape(interactions, [tf.shape(emb)[0], -1])], axis=1)
        hidden = experts_lib.trace(self.layout, task,
                                   _Forward(self, mlp_input, kernels, training))
        logit = tf.squeeze(self.heads[task](hidden), axis=1)
        if self.linear:
            linear, linear_penalty = self.linear_logit(inputs, task)
            logit, penalty = logit + linear, penalty + linear_penalty
        return (logit, penalty) if with_penalty else logit

    def logit(self, inputs, task, kernels):
        """Inference logit [batch] of `task` computed with the given effective MLP `kernels`."""
        return self.forward(inputs, task, kernels)

    def call(self, inputs, task=None, masks=None):
        """Inference logit [batch] of one task (through that task's masks)."""
        return self.logit(inputs, task, self.effective_kernels(masks))


class _Forward:
    """`experts.trace` ops computing tensors: ReLU MLPs through the effective `kernels` (dropout
    after every layer on training steps) and softmax gates."""

    def __init__(self, network, mlp_input, kernels, training):
        self.network, self.input, self.kernels, self.training = (network, mlp_input, kernels,
                                                                 training)

    def mlp(self, mlp, x):
        network = self.network
        for depth, i in enumerate(range(mlp.first, mlp.first + len(mlp.layers))):
            x = tf.nn.relu(tf.matmul(x, self.kernels[i]) + network.biases[i])
            if self.training and network.dropouts:
                x = network.dropouts[depth](x, training=True)
        return x

    def gate(self, gate, x, outputs):
        kernel, bias = self.network.gates[gate.name]
        weights = tf.nn.softmax(tf.matmul(x, kernel) + bias)             # [batch, experts]
        stacked = tf.stack([outputs[e] for e in gate.experts], axis=1)   # [batch, experts, width]
        return tf.reduce_sum(weights[:, :, None] * stacked, axis=1)


def _lookup(table, name, inputs, is_list):
    """(pooled [batch, dim] rows of feature `name` in `table`, [batch] their squared norm).

    Multi-valued features are mean-pooled over their non-padding ids (an empty list gives zeros);
    padding never reaches the table.
    """
    ids = tf.cast(inputs[name], tf.int64)
    if not is_list:
        rows = table(tf.reshape(ids, [-1]))
        return rows, tf.reduce_sum(tf.square(rows), axis=1)
    # Look up only the non-padding ids: a padding slot mapped to a real row would put that row
    # into the sparse gradient, and LazyAdam would move it on stale momentum.
    present = ids != PAD_ID
    example = tf.where(present)[:, 0]
    rows = table(tf.boolean_mask(ids, present))
    batch = tf.shape(ids, out_type=tf.int64)[0]
    count = tf.math.unsorted_segment_sum(tf.ones_like(example, tf.float32), example, batch)
    pooled = tf.math.unsorted_segment_sum(rows, example, batch) / tf.maximum(count, 1.0)[:, None]
    return pooled, tf.math.unsorted_segment_sum(tf.reduce_sum(tf.square(rows), axis=1), example,
                                                batch)
