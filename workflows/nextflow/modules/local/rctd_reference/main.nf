// rctd-reference: single-cell reference -> reference stream (built once, read by every sample).
process RCTD_REFERENCE {
    tag "$meta.id"
    label 'process_medium'

    input:
    tuple val(meta), path(reference)

    output:
    tuple val(meta), path("*.rctd"), emit: stream
    path "versions.yml"           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    rctd-reference \\
        $args \\
        --threads $task.cpus \\
        -o ${prefix}.reference.rctd \\
        $reference

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-reference: \$(rctd-reference --version | sed 's/^rctd-reference //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.reference.rctd

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-reference: \$(rctd-reference --version | sed 's/^rctd-reference //')
    END_VERSIONS
    """
}
