// rctd report: one self-contained HTML report of a sample's result h5ad (run summary with
// sigma's per-epoch likelihood, spatial maps, per-type bars; opens offline).  No report without
// an h5ad (formats 'csv').
process RCTD_REPORT {
    tag "$meta.id"
    label 'process_single'

    input:
    tuple val(meta), path(h5ad)

    output:
    tuple val(meta), path("*.html"), emit: html
    path "versions.yml"            , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    rctd report \\
        $args \\
        -o ${prefix}.html \\
        $h5ad

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd: \$(rctd --version | sed 's/^rctd //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.html

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd: \$(rctd --version | sed 's/^rctd //')
    END_VERSIONS
    """
}
