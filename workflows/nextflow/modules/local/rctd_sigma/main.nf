// rctd-sigma: model stream -> model stream with sigma and its likelihood table.  cache_dir is a
// directory every task can read and write (an absolute path on a shared file system, not
// staged: tables are added to it); '' = the tool's default, $XDG_CACHE_HOME/rctd.
process RCTD_SIGMA {
    tag "$meta.id"
    label 'process_medium'

    input:
    tuple val(meta), path(model)
    val cache_dir

    output:
    tuple val(meta), path("*.rctd"), emit: model
    path "versions.yml"           , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    def cache = cache_dir ? "--cache-dir '${cache_dir}'" : ''
    """
    rctd-sigma \\
        $cache \\
        $args \\
        --threads $task.cpus \\
        -o ${prefix}.sigma.rctd \\
        $model

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-sigma: \$(rctd-sigma --version | sed 's/^rctd-sigma //')
    END_VERSIONS
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.sigma.rctd

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        rctd-sigma: \$(rctd-sigma --version | sed 's/^rctd-sigma //')
    END_VERSIONS
    """
}
