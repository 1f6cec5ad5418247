// rctd-normalize: spatial counts + reference stream -> model stream (gene lists, platform
// normalisation, filtered pixels).
process RCTD_NORMALIZE {
    tag "$meta.id"
    label 'process_medium'

    input:
    tuple val(meta), path(spatial)
    path reference

    output:
    tuple val(meta), path("*.rctd"), emit: model
    path "versions.yml"           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    rctd-normalize \\
        $args \\
        --threads $task.cpus \\
        -o ${prefix}.model.rctd \\
        $spatial \\
        $reference

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-normalize: \$(rctd-normalize --version | sed 's/^rctd-normalize //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.model.rctd

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-normalize: \$(rctd-normalize --version | sed 's/^rctd-normalize //')
    END_VERSIONS
    """
}
