// rctd-fit-multi: up to MAX_MULTI_TYPES types per pixel (multi mode), one shard.  meta.shard of meta.shards takes whole
// chunks of meta.chunk_pixels pixels; every shard of a sample uses the same chunk_pixels.
// cache_dir: as in RCTD_SIGMA (a shared directory, not staged).
process RCTD_FIT_MULTI {
    tag "${meta.id}:${meta.shard}/${meta.shards}"
    label 'process_high'

    input:
    tuple val(meta), path(model)
    val cache_dir

    output:
    tuple val(meta), path("*.rctd"), emit: shard
    path "versions.yml"           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}.multi.${meta.shard}-of-${meta.shards}"
    def cache = cache_dir ? "--cache-dir '${cache_dir}'" : ''
    """
    rctd-fit-multi \\
        $cache \\
        $args \\
        --shard ${meta.shard}/${meta.shards} \\
        --chunk-pixels ${meta.chunk_pixels} \\
        --threads $task.cpus \\
        -o ${prefix}.rctd \\
        $model

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-fit-multi: \$(rctd-fit-multi --version | sed 's/^rctd-fit-multi //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}.multi.${meta.shard}-of-${meta.shards}"
    """
    touch ${prefix}.rctd

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-fit-multi: \$(rctd-fit-multi --version | sed 's/^rctd-fit-multi //')
    END_VERSIONS
    """
}
